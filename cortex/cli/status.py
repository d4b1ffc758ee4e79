"""`cortex status` and `cortex models`: the gateway's /fleet and /v1/models as tables."""

from __future__ import annotations

from typing import Any

GIB = 1024**3


def table(headers: list[str], rows: list[list[Any]], indent: str = "") -> str:
    """Left-aligned columns, two spaces apart."""
    cells = [headers, *[["-" if v is None else str(v) for v in row] for row in rows]]
    widths = [max(len(row[i]) for row in cells) for i in range(len(headers))]
    lines = [
        "  ".join(c.ljust(w) for c, w in zip(row, widths, strict=True)).rstrip() for row in cells
    ]
    return "\n".join(indent + line for line in lines)


def _memory(device: dict[str, Any]) -> str:
    total = device.get("memory_total_bytes") or 0
    free = device.get("memory_free_bytes")
    if free is None:
        return f"{total / GIB:.1f} GiB"
    return f"{(total - free) / GIB:.1f}/{total / GIB:.1f} GiB"


def render_status(fleet: dict[str, Any]) -> str:
    nodes = fleet.get("nodes", [])
    up = sum(1 for n in nodes if n["state"] == "up")
    out = [f"{up}/{len(nodes)} nodes up"]
    out.append(
        table(
            ["NODE", "STATE", "ENDPOINT", "UPTIME", "IN-FLIGHT", "LAST ERROR"],
            [
                [
                    n["name"],
                    n["state"],
                    n["endpoint"],
                    f"{n['uptime_seconds']:.0f}s",
                    n["in_flight"],
                    n["last_error"],
                ]
                for n in nodes
            ],
        )
    )
    for node in nodes:
        out.append(f"\n{node['name']}:")
        out.append(
            table(
                ["DEVICE", "KIND", "NAME", "MEMORY"],
                [[d.get("id"), d.get("kind"), d.get("name"), _memory(d)] for d in node["devices"]],
                indent="  ",
            )
        )
        if node["models"]:
            out.append(
                table(
                    ["MODEL", "STATUS", "DEVICES", "IN-FLIGHT", "PINNED", "IDLE"],
                    [
                        [
                            m["id"],
                            m["status"],
                            ",".join(m["devices"]) or None,
                            m["in_flight"],
                            "yes" if m["pinned"] else "no",
                            f"{m['idle_seconds']:.0f}s",
                        ]
                        for m in node["models"]
                    ],
                    indent="  ",
                )
            )
        else:
            out.append("  (no models loaded)")
    out.append("\n" + render_models(fleet.get("catalogue", [])))
    return "\n".join(out)


def render_models(models: list[dict[str, Any]]) -> str:
    return table(
        ["MODEL", "LOADED ON", "LOADABLE ON", "ALIAS OF"],
        [
            [
                m["id"],
                ",".join(m.get("loaded_on") or []) or None,
                ",".join(m.get("loadable_on") or []) or None,
                m.get("alias_of"),
            ]
            for m in models
        ],
    )

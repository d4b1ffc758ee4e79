"""Both daemons as systemd's Type=notify sees them, on a real notify socket: READY,
a watchdog ping every half WATCHDOG_USEC from the event loop, STOPPING on SIGTERM, and
a notify socket that vanishes (and comes back) costing nothing but log lines."""

from __future__ import annotations

import signal
import time

import pytest

from tests.support.daemons import start_gateway, start_neuron
from tests.support.http import http
from tests.support.notify import NotifyListener

WATCHDOG_USEC = "1000000"  # systemd would expect a ping within 1 s; the daemons send one per 0.5 s


@pytest.mark.parametrize("daemon", ["neuron", "gateway"])
def test_ready_watchdog_vanished_socket_and_stopping(daemon, tmp_path, gw_models):
    listener = NotifyListener()
    env = {"NOTIFY_SOCKET": str(listener.path), "WATCHDOG_USEC": WATCHDOG_USEC}
    if daemon == "neuron":
        proc = start_neuron(tmp_path, gw_models, name="n1", env=env)
    else:
        proc = start_gateway(tmp_path, [], [], env=env)
    try:
        ready = listener.wait_for("READY=1")
        time.sleep(3)
        assert listener.count("WATCHDOG=1", after=ready) >= 3, listener.messages

        path = listener.path
        listener.close(remove_dir=False)  # the socket is gone: sends fail from now on
        time.sleep(1.5)  # three pings' worth
        assert proc.popen.poll() is None, proc.tail()
        assert http("GET", proc.url + "/health").status == 200

        listener = NotifyListener(path)  # systemd back: pings resume, SIGTERM says STOPPING
        listener.wait_for("WATCHDOG=1")
        seen = len(listener.messages)
        proc.signal(signal.SIGTERM)
        listener.wait_for("STOPPING=1", after=seen)
        assert proc.popen.wait(30) == 0, proc.tail()
        assert "Traceback" not in proc.tail(200)
    finally:
        proc.stop()
        listener.close()

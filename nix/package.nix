# One distribution, two installs: the gateway alone (light) or with the neuron extra
# (torch, triton, ...). Version and metadata come from pyproject.toml, so they cannot drift.
{ lib, python3Packages, withNeuron ? true }:
let
  project = (builtins.fromTOML (builtins.readFile ../pyproject.toml)).project;
  program = if withNeuron then "neuron" else "cortex";
in
python3Packages.buildPythonApplication {
  pname = program;
  inherit (project) version;
  pyproject = true;
  src = lib.cleanSourceWith {
    src = ../.;
    filter = path: _type:
      !(lib.hasInfix "/.venv" path || lib.hasInfix "/tests" path || lib.hasInfix "/bench" path);
  };

  build-system = [ python3Packages.setuptools ];
  dependencies = with python3Packages;
    [ aiohttp prometheus-client pyyaml redis ]
    ++ lib.optionals withNeuron [ torch triton safetensors tokenizers gguf jinja2 numpy psutil ];

  # The test suite needs real models and SDKs; the import check proves the install.
  doCheck = false;
  pythonImportsCheck = [ "cortex" ] ++ lib.optionals withNeuron [ "neuron" "neuron_kernels" ];

  meta = {
    inherit (project) description;
    license = lib.licenses.gpl3Plus;
    mainProgram = program;
    platforms = lib.platforms.linux;
  };
}

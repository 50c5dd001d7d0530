"""The runtime layer, below both export and benchmark: one descriptor per model format (``formats``), the artifact
contract, runners for every runtime, artifacts and (artifact, runtime) targets, and launchers that start a runtime in
a child process or under an emulator."""
from egeunet.lazy import lazy_attributes

_PUBLIC = {
    "ArtifactIO": "egeunet.runtime.contract", "CONTRACT_KEY": "egeunet.runtime.contract",
    "Runner": "egeunet.runtime.runners", "open_runner": "egeunet.runtime.runners",
    "list_runtimes": "egeunet.runtime.runners", "runtime_for": "egeunet.runtime.runners",
    "runtimes_for": "egeunet.runtime.runners", "Artifact": "egeunet.runtime.artifacts",
    "Target": "egeunet.runtime.artifacts", "file_digest": "egeunet.runtime.artifacts",
    "read_manifest": "egeunet.runtime.artifacts", "Launcher": "egeunet.runtime.launcher",
    "FileFormat": "egeunet.runtime.formats", "add_format": "egeunet.runtime.formats",
    "format_of": "egeunet.runtime.formats", "read_contract": "egeunet.runtime.formats",
}
__getattr__, __dir__ = lazy_attributes(_PUBLIC)
__all__ = list(_PUBLIC)

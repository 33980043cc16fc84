"""Turning a failed engine run into a message for the user: the engine's own words plus what to do about it.
The hint texts are the keys of the README's Troubleshooting section."""
from typing import Optional

NO_GPU = "No GPU found"
OUT_OF_MEMORY = "Out of memory"
DOWNLOAD_BLOCKED = "Download blocked"
KILLED = "The {task} process was stopped by the system"

_HINTS = (
    (("no cuda gpu", "no gpu found", "only 0 cuda", "apple gpu not available"),
     NO_GPU + ": choose device 'auto' or 'cpu', or install a CUDA build of PyTorch with the PyTorch Utils module "
     "(see Troubleshooting in the HSAM README)."),
    (("out of memory", "memoryerror", "_arraymemoryerror", "cannot allocate memory"),
     OUT_OF_MEMORY + ": choose device 'cpu', crop the volume with the Crop Volume module, or close other "
     "programs, then segment again."),
    (("cannot download", "firewall", "web page instead of", "proxy", "ssl"),
     DOWNLOAD_BLOCKED + ": download the file named above on another computer and put it in the folder the message "
     "names, or import it with `hsam models import FILE`."),
)


def hintFor(errorText: str) -> Optional[str]:
    text = errorText.lower()
    for needles, hint in _HINTS:
        if any(needle in text for needle in needles):
            return hint
    return None


def describeFailure(returnCode: Optional[int], errorText: str, task: str = "segmentation") -> str:
    """One message for a worker that exited with ``returnCode`` and wrote ``errorText``; ``task`` names what
    the process was doing ("segmentation", "training")."""
    if returnCode in (-9, 137) and not errorText:
        # SIGKILL that the module did not send: on Linux almost always the out-of-memory killer
        killed = KILLED.format(task=task)
        return f"{killed} (exit code -9), most likely because it ran out of memory.\n{hintFor('out of memory')}"
    message = errorText or f"The {task} process failed (exit code {returnCode}) without an error message."
    hint = hintFor(message)
    return f"{message}\n{hint}" if hint else message


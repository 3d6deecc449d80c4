"""The host's view of a sandbox's processes: every process whose uids fall in its host id range."""
import os

ID_RANGE = 65536  # ids per sandbox


def live_processes_in_range(base):
    """'pid name (state)' of each host process (zombies excluded) with a uid in [base, base+ID_RANGE)."""
    found = []
    for pid in os.listdir("/proc"):
        if not pid.isdigit():
            continue
        try:
            with open(f"/proc/{pid}/status") as f:
                status = dict(line.split(":", 1) for line in f.read().splitlines() if ":" in line)
        except OSError:
            continue
        state = status.get("State", "").strip()
        if state.startswith(("Z", "X")):
            continue
        if any(base <= int(u) < base + ID_RANGE for u in status.get("Uid", "").split()):
            found.append(f"{pid} {status.get('Name', '').strip()} ({state})")
    return found

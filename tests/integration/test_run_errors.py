"""Bad input to `airlock run`: exit 125 with a clear "airlock:" message, never a crash, never the command.
And the two exec failures: 127 (command not found) and 126 (cannot be invoked).
"""
import json
import subprocess

import pytest

CRASH_SIGNS = ("Traceback", "terminate called", "Segmentation fault", "Aborted", "core dumped",
               "AddressSanitizer", "what():")


def airlock_lines(stderr):
    return [line for line in stderr.splitlines() if line.startswith("airlock:")]


def assert_airlock_error(result, needles):
    """125, nothing ran, an "airlock:" line that names what was wrong (one of `needles`), no crash."""
    assert result.returncode == 125, (result.returncode, result.stdout, result.stderr)
    assert "COMMAND-RAN" not in result.stdout, "the command ran despite the bad input"
    lines = airlock_lines(result.stderr)
    assert lines, f"no 'airlock:' message on stderr: {result.stderr!r}"
    for sign in CRASH_SIGNS:
        assert sign not in result.stderr, result.stderr
    text = "\n".join(lines)
    assert any(n in text for n in needles), f"the message does not say what is wrong ({needles}): {text!r}"


# (options, words one of which the "airlock:" message must contain)
BAD_OPTIONS = [
    (["--bogus"], ["--bogus"]),
    (["--memory", "12Q"], ["12Q"]),
    (["--memory", "0"], ["--memory"]),
    (["--memory", "-1"], ["--memory", "-1"]),
    (["--memory", "1"], ["--memory"]),               # one byte cannot hold anything
    (["--memory", ""], ["--memory"]),
    (["--disk", "12Q"], ["12Q"]),
    (["--disk", "0"], ["--disk"]),
    (["--pids", "0"], ["--pids"]),
    (["--pids", "-3"], ["--pids"]),
    (["--pids", "abc"], ["--pids", "abc"]),
    (["--cpus", "0"], ["--cpus"]),
    (["--cpus", "abc"], ["abc", "--cpus"]),
    (["--cpus", "-1"], ["--cpus", "-1"]),
    (["--timeout", "0"], ["--timeout"]),
    (["--timeout", "5x"], ["5x", "--timeout"]),
    (["--timeout", "-1s"], ["--timeout", "-1s"]),
    (["--net", "host"], ["--net", "host"]),
    (["--net", "bridge"], ["--net", "bridge"]),
    (["--image", "nosuch"], ["nosuch"]),
    (["--user", "70000"], ["--user", "70000"]),
    (["--user", "abc"], ["--user", "abc"]),
    (["--user", "-1"], ["--user", "-1"]),
    (["--user", "1000:abc"], ["--user"]),
    (["--cap-drop", "SOME"], ["--cap-drop", "SOME"]),
    (["-e", "=value"], ["=value", "--env", "-e"]),
    (["-e", ""], ["--env", "-e", "env"]),
    (["--env", "=x"], ["=x", "--env"]),
    (["-w", "relative/dir"], ["relative/dir", "workdir"]),
    (["-w", "/a/../b"], ["/a/../b", "workdir"]),
]


@pytest.mark.parametrize("options,needles", BAD_OPTIONS, ids=[" ".join(o) or "empty" for o, _ in BAD_OPTIONS])
def test_bad_option_is_rejected(run, options, needles):
    r = run(*options, cmd=["sh", "-c", "echo COMMAND-RAN"], input="")
    assert_airlock_error(r, needles)


def test_option_without_its_value(airlock_bin):
    r = subprocess.run([airlock_bin, "run", "--memory", "--", "true"], capture_output=True, text=True, timeout=30)
    assert_airlock_error(r, ["--memory"])


def test_missing_double_dash_before_the_command(airlock_bin):
    # The usual slip: `airlock run echo hi`. The message must point at the missing "--".
    r = subprocess.run([airlock_bin, "run", "echo", "COMMAND-RAN"], capture_output=True, text=True, timeout=30)
    assert_airlock_error(r, ['"--"', "'--'", "`--`", " -- "])


def test_missing_double_dash_with_options_only(airlock_bin):
    r = subprocess.run([airlock_bin, "run", "--memory", "1G"], capture_output=True, text=True, timeout=30)
    assert_airlock_error(r, ['"--"', "'--'", "`--`", " -- "])


def test_nothing_after_double_dash(airlock_bin):
    r = subprocess.run([airlock_bin, "run", "--"], capture_output=True, text=True, timeout=30)
    assert_airlock_error(r, ["command", "COMMAND"])
    r = subprocess.run([airlock_bin, "run", "--memory", "1G", "--"], capture_output=True, text=True, timeout=30)
    assert_airlock_error(r, ["command", "COMMAND"])


def test_empty_command_name(run):
    r = run(cmd=[""], input="")
    assert r.returncode in (125, 126, 127), r
    assert airlock_lines(r.stderr), r.stderr


def test_unknown_verb(airlock_bin):
    r = subprocess.run([airlock_bin, "runn", "--", "true"], capture_output=True, text=True, timeout=30)
    assert r.returncode == 125
    assert airlock_lines(r.stderr)


# --- the command itself cannot run -------------------------------------------------------------------


def test_command_not_found_is_127(run):
    r = run(cmd=["no-such-command-xyz", "arg"], input="")
    assert r.returncode == 127, r
    assert any("no-such-command-xyz" in l and "not found" in l for l in airlock_lines(r.stderr)), r.stderr


def test_missing_absolute_path_is_127(run):
    r = run(cmd=["/usr/bin/no-such-binary"], input="")
    assert r.returncode == 127, r
    assert airlock_lines(r.stderr), r.stderr


def test_non_executable_file_is_126(run):
    r = run(cmd=["/etc/passwd"], input="")
    assert r.returncode == 126, r
    assert any("/etc/passwd" in l for l in airlock_lines(r.stderr)), r.stderr


def test_directory_as_command_is_126(run):
    r = run(cmd=["/tmp"], input="")
    assert r.returncode == 126, r
    assert airlock_lines(r.stderr), r.stderr


def test_non_executable_file_in_a_volume_is_126(run, tmp_path):
    script = tmp_path / "script.sh"
    script.write_text("#!/bin/sh\necho COMMAND-RAN\n")
    script.chmod(0o644)
    r = run("-v", f"{tmp_path}:/work:ro", cmd=["/work/script.sh"], input="")
    assert r.returncode == 126, r
    assert "COMMAND-RAN" not in r.stdout


def test_exec_failure_with_json_reports_the_code(run):
    r = run("--json", cmd=["no-such-command-xyz"], input="")
    assert r.returncode == 127
    reports = [json.loads(l) for l in r.stderr.splitlines() if l.startswith("{")]
    assert len(reports) == 1, r.stderr
    assert reports[0]["exit_code"] == 127

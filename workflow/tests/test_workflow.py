"""The workflow end to end with a real Snakemake, on four phantom patients (two that must fail),
and the report in a real browser (headless Chromium).

Run by `make workflow-test` (part of `make test`): CTPREP_BIN names the folder of the ctprep
binaries; Snakemake is the one of this interpreter's venv.
"""

import json
import os
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
BIN = Path(os.environ.get("CTPREP_BIN", ROOT / "target" / "release")).resolve()
SNAKEMAKE = [sys.executable, "-m", "snakemake", "-s", str(ROOT / "workflow" / "Snakefile")]
CHROMIUM = shutil.which("chromium") or shutil.which("chromium-browser")
PER_PATIENT = ("volume", "lungs", "bone", "thumbs", "normalize")


def phantom(folder: Path, *args: str) -> None:
    subprocess.run([BIN / "ct-phantom", folder, "--size", "128", "--slices", "50", "--slice-spacing", "3", "-q", *args], check=True)


def snakemake(tmp: Path, *args: str, out: str = "out") -> subprocess.CompletedProcess:
    cmd = [*SNAKEMAKE, "--cores", "2", "--config", "input=in", f"output={out}", f"bin={BIN}", *args]
    return subprocess.run(cmd, cwd=tmp, capture_output=True, text=True)


def jobs_run(stderr: str) -> set[tuple[str, str]]:
    """(rule, patient or '') of every job a run executed, from Snakemake's log."""
    found = set()
    for block in re.split(r"\n(?=(?:local)?(?:rule|checkpoint) )", stderr):
        m = re.match(r"(?:local)?rule (\w+):", block)
        if m:
            p = re.search(r"wildcards: patient=(\S+)", block)
            found.add((m.group(1), p.group(1) if p else ""))
    return found


@pytest.fixture(scope="module")
def dataset(tmp_path_factory):
    """p01 an ordinary chest; p02 feet-first with a truncated slice among its files; p03 no CT;
    p04 a scan of the neck and skull only (24 mm, no lungs)."""
    tmp = tmp_path_factory.mktemp("dataset")
    phantom(tmp / "in" / "p01")
    phantom(tmp / "in" / "p02", "--feet-first", "--seed", "7")
    first = sorted((tmp / "in" / "p02").iterdir())[0]
    (tmp / "in" / "p02" / "truncated.dcm").write_bytes(first.read_bytes()[:3000])
    (tmp / "in" / "p03").mkdir()
    (tmp / "in" / "p03" / "notes.txt").write_text("no CT here\n")
    subprocess.run([BIN / "ct-phantom", tmp / "in" / "p04", "--size", "128", "--slices", "8", "--slice-spacing", "3", "--head-mm", "24",
                    "-q"], check=True)
    run = snakemake(tmp)
    return tmp, run


def test_run_goes_on_past_a_failed_patient_and_lists_it(dataset):
    tmp, run = dataset
    assert run.returncode == 0, run.stderr[-3000:]
    assert "2 of 4 patient(s) failed" in run.stderr
    assert re.search(r"p03 \(volume\): hu-convert: error: '[^']*/p03': no DICOM images found", run.stderr), run.stderr[-3000:]
    assert "p04 (lungs): lung-seg: error: no lungs found" in run.stderr
    out = tmp / "out"
    for p in ("p01", "p02"):
        for f in ("volume/hu_1mm.nii", "volume/fit.json", "lungs/lungs.nii.gz", "lungs/lungs_qc.json", "bone/bone.stl",
                  "bone/bone.png", "thumbs/axial.png", "thumbs/coronal.png", "input/input.npy", "input/input.json"):
            assert (out / p / f).is_file(), f"{p}/{f}"
        for step in ("volume", "lungs", "bone", "thumbs", "input"):
            assert json.loads((out / p / step / "status.json").read_text())["ok"] is True
    status = json.loads((out / "p03" / "volume" / "status.json").read_text())
    assert status["ok"] is False and status["exit"] == 1
    assert re.fullmatch(r"hu-convert: error: '[^']*/p03': no DICOM images found", status["error"]), status["error"]
    assert "dcm-inspect --series" in status["hint"]
    # Nothing of the failed patient that could pass for a result; its later steps say why.
    assert sorted(os.listdir(out / "p03" / "volume")) == [".snakemake_timestamp", "status.json", "stderr.log"]
    lungs = json.loads((out / "p03" / "lungs" / "status.json").read_text())
    assert lungs["ok"] is False and lungs["skipped"] is True
    assert not list((out / "p03").rglob("*.nii*")) and not list((out / "p03").rglob("*.npy"))
    # No lungs (exit 3): recorded with the tool's line; the pictures come without the overlay,
    # since they show why; no training input.
    lungs = json.loads((out / "p04" / "lungs" / "status.json").read_text())
    assert (lungs["ok"], lungs["exit"]) == (False, 3) and "no lungs found" in lungs["error"]
    assert not (out / "p04" / "lungs" / "lungs.nii.gz").exists() and (out / "p04" / "thumbs" / "axial.png").is_file()
    assert not (out / "p04" / "input" / "input.npy").exists()


def test_statistics_come_from_the_patients_that_went_through(dataset):
    tmp, _ = dataset
    stats = json.loads((tmp / "out" / "stats.json").read_text())
    assert len(stats["volumes"]) == 3  # p04 has a volume, though no lungs
    # Merged from the patients' own fits, it equals a fit over their volumes.
    refit = subprocess.run([BIN / "vol-normalize", "--fit", *(tmp / f"out/{p}/volume/hu_1mm.nii" for p in ("p01", "p02", "p04")),
                            "-o", "-", "-q"], capture_output=True, text=True, check=True)
    assert json.loads(refit.stdout)["mean"] == pytest.approx(stats["mean"], rel=1e-12)
    assert float((tmp / "out" / "mean.txt").read_text()) == stats["mean"]
    # The input is centred with that mean: outside the lung mask it is exactly 0, inside the
    # normalized HU minus the mean.
    meta = json.loads((tmp / "out" / "p01" / "input" / "input.json").read_text())["meta"]
    assert meta["normalization"]["mean"] == pytest.approx(stats["mean"])


def test_the_truncated_file_is_left_out_with_a_warning_the_report_shows(dataset):
    tmp, _ = dataset
    log = (tmp / "out" / "p02" / "volume" / "stderr.log").read_text()
    assert "truncated.dcm" in log and "warning" in log
    report = json.loads(subprocess.run([BIN / "ctprep-report", tmp / "out", "-o", tmp / "r.html", "--json", "-q"],
                                       capture_output=True, text=True, check=True).stdout)
    assert report["failed"] == ["p03", "p04"]
    rows = {r["name"]: r for r in report["rows"]}
    assert any("truncated.dcm" in w for w in rows["p02"]["warnings"])
    assert rows["p02"]["series"]["patient_position"] == "FFS"
    assert rows["p01"]["flags"] == []
    assert 1000 < rows["p01"]["lungs"]["total_ml"] < 3000


def test_a_second_run_does_nothing(dataset):
    tmp, _ = dataset
    run = snakemake(tmp)
    assert run.returncode == 0
    assert "Nothing to be done" in run.stderr, run.stderr[-2000:]


def test_a_changed_patient_reruns_only_its_own_steps(dataset):
    tmp, _ = dataset
    before = (tmp / "out" / "p02" / "volume" / "hu_1mm.nii").stat().st_mtime_ns
    shutil.rmtree(tmp / "in" / "p01")
    phantom(tmp / "in" / "p01", "--noise", "30")
    run = snakemake(tmp)
    assert run.returncode == 0, run.stderr[-3000:]
    ran = jobs_run(run.stderr)
    per_patient = {(r, p) for r, p in ran if r in PER_PATIENT and r != "normalize"}
    assert per_patient == {(r, "p01") for r in PER_PATIENT if r != "normalize"}
    # The dataset mean is refitted; the inputs are re-centred only if it changed.
    assert ("stats", "") in ran and ("report", "") in ran
    assert (tmp / "out" / "p02" / "volume" / "hu_1mm.nii").stat().st_mtime_ns == before


def finished(log: str, rule: str) -> set[str]:
    """The patients whose `rule` job Snakemake reported finished in this log."""
    patients = {}
    for block in re.split(r"\n(?=(?:local)?rule )", log):
        m = re.match(r"(?:local)?rule (\w+):.*?jobid: (\d+).*?wildcards: patient=(\S+)", block, re.S)
        if m and m.group(1) == rule:
            patients[m.group(2)] = m.group(3)
    return {patients[j] for j in re.findall(rf"Finished jobid: (\d+) \(Rule: {rule}\)", log) if j in patients}


def test_an_interrupted_run_resumes_without_redoing_finished_patients(tmp_path):
    for p in ("a", "b", "c", "d"):
        phantom(tmp_path / "in" / p, "--seed", str(ord(p)))
    cmd = [*SNAKEMAKE, "--cores", "1", "--config", "input=in", "output=out", f"bin={BIN}"]
    log = tmp_path / "first.log"
    with open(log, "w") as err:
        # A shell's background job (CI, `make test &`) starts with SIGINT ignored, and Python keeps
        # an ignored SIGINT: give Snakemake the default back, as a terminal's Ctrl-C would find it.
        proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.DEVNULL, stderr=err,
                                preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL))
        deadline = time.monotonic() + 120
        while not finished(log.read_text(), "volume") and time.monotonic() < deadline:
            time.sleep(0.05)
        proc.send_signal(signal.SIGINT)
        proc.wait(timeout=120)
    done = finished(log.read_text(), "volume")
    assert done, "no patient finished its volume before the interrupt"
    assert not (tmp_path / "out" / "report.html").exists()
    mtimes = {p: (tmp_path / "out" / p / "volume" / "status.json").stat().st_mtime_ns for p in done}
    rerun = snakemake(tmp_path)
    assert rerun.returncode == 0, rerun.stderr[-3000:]
    for p in done:
        assert (tmp_path / "out" / p / "volume" / "status.json").stat().st_mtime_ns == mtimes[p], p
        assert ("volume", p) not in jobs_run(rerun.stderr)
    assert {p for r, p in jobs_run(rerun.stderr) if r == "volume"} == set("abcd") - done
    assert (tmp_path / "out" / "report.html").is_file()
    assert all((tmp_path / "out" / p / "input" / "input.npy").is_file() for p in "abcd")


STEP = [sys.executable, str(ROOT / "workflow" / "scripts" / "step.py")]


@pytest.mark.parametrize("exit_code,message,recorded", [
    (1, "dcm-stack: error: 'x': not DICOM", True),            # bad input: a result of the dataset
    (3, "lung-seg: error: no lungs found", True),              # empty result: also a result
    (1, "vol-normalize: error: 'o': cannot write: No space left on device (os error 28)", False),
    (2, "lung-seg: error: unexpected argument", False),        # a bug in the workflow
    (137, "", False),                                          # killed (out of memory)
])
def test_step_records_data_errors_and_fails_on_machine_errors(tmp_path, exit_code, message, recorded):
    out = tmp_path / "step"
    cmd = f"echo partial > {out}/x.nii; echo {message!r} >&2; echo '  hint: do this' >&2; exit {exit_code}"
    run = subprocess.run([*STEP, "lungs", str(out), "--", cmd], capture_output=True, text=True)
    if recorded:
        assert run.returncode == 0
        status = json.loads((out / "status.json").read_text())
        assert (status["ok"], status["exit"], status["error"], status["hint"]) == (False, exit_code, message, "do this")
        assert sorted(os.listdir(out)) == ["status.json", "stderr.log"]  # the partial output is gone
    else:
        assert run.returncode == exit_code and not (out / "status.json").exists()


@pytest.mark.parametrize("profile", ["slurm", "kubernetes"])
def test_cluster_profiles_dry_run(dataset, profile):
    """The profiles parse, their executor plugins load, and every job gets its resources. They
    cannot run here (no cluster): Kubernetes' storage prefix is pointed at this folder."""
    tmp, _ = dataset
    extra = ["--default-storage-prefix", str(tmp)] if profile == "kubernetes" else []
    run = subprocess.run([*SNAKEMAKE, "--profile", str(ROOT / "workflow" / "profiles" / profile), "--dry-run",
                          *extra, "--forceall", "--config", "input=in", "output=fresh", "bin="],
                         cwd=tmp, capture_output=True, text=True)
    assert run.returncode == 0, run.stderr[-3000:]
    text = run.stdout + run.stderr
    assert "This was a dry-run" in text
    counts = dict(re.findall(r"^(\w+)\s+(\d+)$", text, re.M))
    assert counts.get("volume") == "4" and counts.get("report") == "1", counts
    # The measured memory per step, as the profiles ask for it (first attempt).
    assert "mem_mb=800," in text and "mem_mb=520," in text


def browser(*args: str) -> subprocess.CompletedProcess:
    flags = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
             "--disable-background-networking", "--disable-component-update", "--disable-sync"]
    return subprocess.run([CHROMIUM, *flags, *args], capture_output=True, text=True, timeout=120)


def rows_in_order(dom: str) -> list[str]:
    body = dom.split("<tbody>", 1)[1]
    return re.findall(r'<tr id="p-[^"]*" data-patient="([^"]+)"', body)


@pytest.mark.skipif(CHROMIUM is None, reason="SKIPPED: no chromium on this machine (make deps-browser installs it)")
def test_report_in_a_real_browser(dataset, tmp_path):
    tmp, _ = dataset
    page = tmp / "out" / "report.html"
    html = page.read_text()
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "") and "https://" not in html
    url = page.as_uri()
    # The DOM after the script ran: a sort asked for in the address is applied.
    dom = browser(f"--user-data-dir={tmp_path / 'u1'}", "--dump-dom", url + "#sort=patient-desc").stdout
    assert rows_in_order(dom) == ["p04", "p03", "p02", "p01"]
    assert '<th data-key="patient" class="desc">' in dom
    dom = browser(f"--user-data-dir={tmp_path / 'u2'}", "--dump-dom", url + "#sort=flags-desc").stdout
    assert rows_in_order(dom) == ["p04", "p03", "p02", "p01"]  # failed first (p04 also has two warnings), then p02
    dom = browser(f"--user-data-dir={tmp_path / 'u3'}", "--dump-dom", url).stdout
    assert rows_in_order(dom) == ["p01", "p02", "p03", "p04"]
    assert re.search(r'<tr id="p-p03" data-patient="p03" class="failed flagged">', dom)
    assert re.search(r'<li data-patient="p03">.*no DICOM images found', dom)
    assert re.search(r'<li data-patient="p04">.*no lungs found', dom)
    assert '<span id="n-failed">2</span>' in dom and '<span id="n-patients">4</span>' in dom
    # Every thumbnail loads (relative links next to the report): p01, p02 and p04's.
    imgs = re.findall(r'<img src="([^"]+)"', dom)
    assert len(imgs) == 6 and all((page.parent / i).is_file() for i in imgs)
    shot = tmp_path / "report.png"
    browser(f"--user-data-dir={tmp_path / 'u4'}", "--window-size=1400,900", f"--screenshot={shot}", url)
    data = shot.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = int.from_bytes(data[16:20], "big"), int.from_bytes(data[20:24], "big")
    assert (width, height) == (1400, 900)
    # A blank or error page compresses to a few kB; the report with its thumbnails does not.
    assert len(data) > 40_000, len(data)

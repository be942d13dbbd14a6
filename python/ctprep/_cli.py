"""Console scripts: each command-line tool runs inside the interpreter, over the same Rust code as
the standalone binaries (same arguments, messages and exit codes)."""

import sys


def _run(tool):
    from ctprep._ctprep import _cli_main

    sys.stdout.flush()
    raise SystemExit(_cli_main(tool, sys.argv[1:]))


def dcm_inspect():
    _run("dcm-inspect")


def dcm_stack():
    _run("dcm-stack")


def hu_convert():
    _run("hu-convert")


def vol_resample():
    _run("vol-resample")


def lung_seg():
    _run("lung-seg")


def vol_normalize():
    _run("vol-normalize")


def vol_mesh():
    _run("vol-mesh")


def vol_view():
    _run("vol-view")


def ct_phantom():
    _run("ct-phantom")


def ctprep_report():
    _run("ctprep-report")

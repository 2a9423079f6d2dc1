"""The command line as a user meets it: help, version, exit codes, one-line errors."""

import json
import re
import subprocess
import sys

from click.testing import CliRunner

from dcgan_data import __version__
from dcgan_data.testing.photos import PHOTOS, ROOT
from dcgan_data_cli.main import cli


def run(*args):
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


def test_help_and_version():
    result = run("--help")
    assert result.exit_code == 0
    for verb in ("pack", "ingest", "inspect"):
        assert verb in result.output
    assert run("--version").output.strip() == f"dcgan-data, version {__version__}"


def test_python_dash_m_runs_the_same_command():
    out = subprocess.run([sys.executable, "-m", "dcgan_data", "--version"], capture_output=True,
                         text=True, check=True)
    assert __version__ in out.stdout


def test_missing_source_exits_2_with_one_line(tmp_path):
    result = run("ingest", str(tmp_path / "nope"), "-o", str(tmp_path / "out"))
    assert result.exit_code == 2
    assert result.output.strip().splitlines() == [f"error: {tmp_path / 'nope'}: no such file or "
                                                  "directory"]
    assert "Traceback" not in result.output


def test_usage_error_exits_2():
    assert run("ingest").exit_code == 2
    assert run("no-such-verb").exit_code == 2


def test_pack_ingest_inspect_end_to_end(tmp_path):
    lmdb_dir = tmp_path / "mine_train_lmdb"
    result = run("pack", *[str(p) for p in PHOTOS[:5]], "-o", str(lmdb_dir), "--format", "jpeg")
    assert result.exit_code == 0 and "packed 5 images" in result.output
    result = run("ingest", str(lmdb_dir), "-o", str(tmp_path / "s"), "--workers", "1",
                 "--size", "32")
    assert result.exit_code == 0 and "ingested 5 of 5" in result.output
    sheet = tmp_path / "sheet.png"
    result = run("inspect", str(tmp_path / "s"), "--sheet", str(sheet))
    summary = json.loads(result.output)
    assert result.exit_code == 0 and summary["count"] == 5 and summary["shape"] == [32, 32, 3]
    assert sheet.exists()
    (tmp_path / "s" / "shard-00000.npy").write_bytes(b"broken")
    result = run("inspect", str(tmp_path / "s"), "--sheet", str(sheet))
    assert result.exit_code == 1


def test_library_never_imports_click():
    library = (ROOT / "dcgan_data").glob("*.py")
    offenders = [p.name for p in library if p.name != "__main__.py"
                 and re.search(r"^\s*(import click|from click)", p.read_text(), re.M)]
    assert offenders == []


def test_help_of_every_verb_imports_no_torch():
    # --help must stay quick: torch takes seconds to import
    verbs = list(cli.commands)
    script = ("import sys\nfrom click.testing import CliRunner\n"
              "from dcgan_data_cli.main import cli\n"
              "for args in [['--help']] + [[v, '--help'] for v in sys.argv[1:]]:\n"
              "    assert CliRunner().invoke(cli, args).exit_code == 0, args\n"
              "print('torch' in sys.modules)\n")
    out = subprocess.run([sys.executable, "-c", script, *verbs], capture_output=True,
                         text=True, check=True)
    assert out.stdout.strip() == "False", out.stderr

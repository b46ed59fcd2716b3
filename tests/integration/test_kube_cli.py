"""`imgpull images` and `imgpull rewrite` as users run them."""

from __future__ import annotations

import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from imgpull.errors import EXIT_USAGE
from tests.cli import assert_clean_failure, run_imgpull
from tests.fixtures.hostile import RSS_KILL, assert_secure_outcome
from tests.fixtures.procwatch import watch_imgpull

DATA = Path(__file__).resolve().parent.parent / "data" / "k8s"
KUBE_PROMETHEUS = DATA / "kube-prometheus" / "manifests"
POD = "apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - name: a\n    image: {}\n"

pytestmark = pytest.mark.usefixtures("fresh_env")


def lines(data: bytes) -> list[str]:
    return data.decode().splitlines()


def test_images_lists_the_corpus_and_reads_stdin() -> None:
    done = run_imgpull("images", str(DATA / "manifests"))
    assert done.returncode == 0, done.stderr
    assert done.stdout.decode() == (DATA / "expected-images.txt").read_text()
    one = next(iter(sorted((DATA / "manifests").rglob("*.yaml"))))
    piped = run_imgpull("images", "-", input=one.read_bytes())
    assert piped.returncode == 0
    assert (
        piped.stdout.decode().splitlines()
        == run_imgpull("images", str(one)).stdout.decode().splitlines()
    )


def test_rewrite_shows_a_diff_then_writes_in_place(tmp_path: Path) -> None:
    copy = tmp_path / "manifests"
    shutil.copytree(DATA / "manifests", copy)
    before = {p: p.read_bytes() for p in copy.rglob("*.yaml")}
    shown = run_imgpull("rewrite", str(copy), "--to", "registry.local:5000/mirror")
    assert shown.returncode == 0, shown.stderr
    assert b"+        image: registry.local:5000/mirror/" in shown.stdout
    assert {p: p.read_bytes() for p in copy.rglob("*.yaml")} == before  # a diff only
    done = run_imgpull(
        "rewrite", str(copy), "--to", "registry.local:5000/mirror", "--in-place", "-q"
    )
    assert done.returncode == 0, done.stderr
    after = run_imgpull("images", str(copy)).stdout.decode().split()
    assert after and all(i.startswith("registry.local:5000/mirror/") for i in after)
    assert "registry.local:5000/mirror/coredns:v1.11.1" in after  # kubeadm's layout
    # Comments survive.
    for path, old in before.items():
        old_comments = [line for line in old.splitlines() if line.lstrip().startswith(b"#")]
        new_comments = [ln for ln in path.read_bytes().splitlines() if ln.lstrip().startswith(b"#")]
        assert new_comments == old_comments


def test_rewrite_refuses_broken_yaml_and_changes_nothing(tmp_path: Path) -> None:
    good = tmp_path / "good.yaml"
    good.write_text("apiVersion: v1\nkind: Pod\nspec:\n  containers:\n  - image: nginx\n")
    shutil.copy(DATA / "broken" / "bad.yaml", tmp_path / "bad.yaml")
    before = good.read_bytes()
    done = run_imgpull("rewrite", str(tmp_path), "--to", "r.local/m", "--in-place")
    assert_clean_failure(done, code=EXIT_USAGE, contains="bad.yaml")
    assert good.read_bytes() == before
    nothing = run_imgpull("rewrite", str(good))
    assert_clean_failure(nothing, code=EXIT_USAGE, contains="nothing to rewrite")


# --------------------------------------------------------------------------- kube-prometheus

KUBE_PROMETHEUS_IMAGES = [
    "quay.io/prometheus/alertmanager:v0.27.0",
    "quay.io/prometheus/blackbox-exporter:v0.25.0",
    "ghcr.io/jimmidyson/configmap-reload:v0.13.0",
    "quay.io/brancz/kube-rbac-proxy:v0.18.0",
    "grafana/grafana:11.1.0",
    "registry.k8s.io/kube-state-metrics/kube-state-metrics:v2.12.0",
    "quay.io/prometheus/node-exporter:v1.8.1",
    "quay.io/prometheus/prometheus:v2.53.0",
    "registry.k8s.io/prometheus-adapter/prometheus-adapter:v0.12.0",
    "quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0",
    "quay.io/prometheus-operator/prometheus-operator:v0.75.0",
]


def test_images_of_kube_prometheus_include_the_custom_resources_and_the_reloader() -> None:
    done = run_imgpull("images", str(KUBE_PROMETHEUS))
    assert done.returncode == 0, done.stderr
    assert lines(done.stdout) == KUBE_PROMETHEUS_IMAGES
    assert done.stderr == b""  # nothing image-like left alone
    verbose = lines(run_imgpull("images", str(KUBE_PROMETHEUS), "--verbose").stdout)
    kinds = {line.split()[2]: line.split()[1] for line in verbose}
    assert kinds["quay.io/prometheus/prometheus:v2.53.0"] == "cr-field"
    assert kinds["quay.io/prometheus/alertmanager:v0.27.0"] == "cr-field"
    assert kinds["quay.io/prometheus-operator/prometheus-config-reloader:v0.75.0"] == "arg"
    operator = KUBE_PROMETHEUS / "prometheusOperator-deployment.yaml"
    assert f"{operator}:32:40 arg quay.io/prometheus-operator/" in "\n".join(verbose)
    assert len(verbose) == 15  # every use: kube-rbac-proxy runs in five pods


def test_rewrite_of_kube_prometheus_changes_what_sed_changes(tmp_path: Path) -> None:
    ours, theirs = tmp_path / "imgpull", tmp_path / "sed"
    shutil.copytree(KUBE_PROMETHEUS, ours)
    shutil.copytree(KUBE_PROMETHEUS, theirs)
    files = sorted(str(p) for p in theirs.glob("*.yaml"))
    subprocess.run(["sed", "-i", "s_quay.io_quay.mirrors.ustc.edu.cn_", *files], check=True)
    done = run_imgpull(
        "rewrite", str(ours), "--mirror", "quay.io=quay.mirrors.ustc.edu.cn", "--in-place"
    )
    assert done.returncode == 0, done.stderr
    assert lines(done.stderr) == ["rewrote 11 image values in 6 files"]
    for path in sorted(theirs.glob("*.yaml")):
        assert (ours / path.name).read_bytes() == path.read_bytes(), path.name
    assert b"quay.io/" not in b"".join(p.read_bytes() for p in ours.glob("*.yaml"))


def test_the_three_renaming_options(tmp_path: Path) -> None:
    manifest = tmp_path / "kube-system.yaml"
    shutil.copy(DATA / "manifests" / "cluster" / "kube-system.yaml", manifest)
    repo = "registry.aliyuncs.com/google_containers"
    cases = {
        ("--image-repository", repo): f"+        image: {repo}/coredns:v1.11.1",
        ("--to", repo): f"+        image: {repo}/coredns:v1.11.1",
        ("--mirror", "registry.k8s.io=k8s.m.daocloud.io"): (
            "+        image: k8s.m.daocloud.io/coredns/coredns:v1.11.1"
        ),
    }
    for option, line in cases.items():
        done = run_imgpull("rewrite", str(manifest), *option)
        assert done.returncode == 0, done.stderr
        assert line in lines(done.stdout), option
    both = run_imgpull(
        "rewrite", str(manifest), "--image-repository", repo, "--mirror", "k8s.gcr.io=m.local"
    )
    assert_clean_failure(both, code=EXIT_USAGE, contains="both rename Kubernetes")


# --------------------------------------------------------------------------- bad inputs


def bad_tree(root: Path) -> dict[str, Path]:
    files = {
        "good": POD.format("quay.io/a/good:1"),
        "helm": POD.format("{{ .Values.image }}:{{ .Values.tag }}"),
        "quoted-helm": POD.format('"{{ .Values.image }}"'),
        "placeholder": POD.format("<YOUR-CONTAINER>"),
        "syntax": "a: [1, 2\n",
        "zz-good": POD.format("quay.io/a/other:2"),
    }
    paths = {}
    for name, text in files.items():
        paths[name] = root / f"{name}.yaml"
        paths[name].write_text(text)
    paths["binary"] = root / "binary.yaml"
    paths["binary"].write_bytes(b"\x7fELF\0\0")
    return paths


def test_keep_going_lists_the_good_and_reports_each_bad_input(tmp_path: Path) -> None:
    paths = bad_tree(tmp_path)
    done = run_imgpull("images", str(tmp_path), "--keep-going")
    assert done.returncode == EXIT_USAGE
    assert lines(done.stdout) == ["quay.io/a/good:1", "quay.io/a/other:2"]
    errors = lines(done.stderr)
    assert errors == [
        f"imgpull: error: {paths['binary']}: a binary file, not YAML text (NUL byte at offset 4) "
        "(give Kubernetes YAML files)",
        f"imgpull: error: {paths['helm']}: looks like a Helm template; render it first: "
        "helm template ... | imgpull images -",
        f'imgpull: error: {paths["placeholder"]}:6:12: "<YOUR-CONTAINER>" is a placeholder, '
        "not an image (put a real image there, e.g. nginx:1.27)",
        f"imgpull: error: {paths['quoted-helm']}: looks like a Helm template; render it first: "
        "helm template ... | imgpull images -",
        f"imgpull: error: {paths['syntax']}:2:1: invalid YAML: did not find expected ',' or ']' "
        "(while parsing a flow sequence at line 1, column 4) (fix the YAML syntax at that "
        "position)",
        "imgpull: error: skipped 5 bad inputs; the others were processed",
    ]
    # Without --keep-going: all or nothing, one line.
    strict = run_imgpull("images", str(tmp_path))
    assert_clean_failure(strict, code=EXIT_USAGE, contains="binary.yaml: a binary file")


def test_keep_going_rewrite_in_place(tmp_path: Path) -> None:
    paths = bad_tree(tmp_path)
    done = run_imgpull("rewrite", str(tmp_path), "--mirror", "quay.io=q.local", "--in-place",
                       "--keep-going")  # fmt: skip
    assert done.returncode == EXIT_USAGE
    assert "q.local/a/good:1" in paths["good"].read_text()
    assert "q.local/a/other:2" in paths["zz-good"].read_text()
    errors = lines(done.stderr)
    assert errors[0] == "rewrote 2 image values in 2 files"
    assert (
        f"imgpull: error: {paths['helm']}: looks like a Helm template; render it first: "
        "helm template ... | imgpull rewrite -" in errors
    )
    assert errors[-1] == "imgpull: error: skipped 5 bad inputs; the others were processed"


def test_a_partial_in_place_failure_says_what_was_rewritten(tmp_path: Path) -> None:
    small = tmp_path / "a.yaml"
    small.write_text(POD.format("quay.io/a/b:1"))
    large = tmp_path / "b.yaml"
    large.write_text(POD.format("quay.io/a/b:1") + "# padding\n" * 2000)
    # Files may not grow past 4 KiB: a.yaml is rewritten, b.yaml cannot be written.
    limited = (
        "import resource, signal, sys; signal.signal(signal.SIGXFSZ, signal.SIG_IGN); "
        "resource.setrlimit(resource.RLIMIT_FSIZE, (4096, 4096)); "
        "from imgpull.cli.main import main; sys.exit(main(sys.argv[1:]))"
    )
    done = subprocess.run(
        [sys.executable, "-c", limited, "rewrite", str(tmp_path), "--mirror", "quay.io=q.local",
         "--in-place"],
        capture_output=True, check=False, timeout=60,
    )  # fmt: skip
    line = assert_clean_failure(done, code=EXIT_USAGE, contains="b.yaml: cannot write")
    assert line.endswith(f"(already rewritten: {small})")
    assert "q.local" in small.read_text()
    assert "quay.io" in large.read_text()


@pytest.mark.parametrize("command", [["images"], ["rewrite", "--to", "r.local"]])
def test_dev_zero_and_huge_inputs_end_at_once(tmp_path: Path, command: list[str]) -> None:
    """Issue 9: no input exhausts memory; watched, each run stays below 100 MiB of peak
    RSS (VmHWM) and ends at once (these commands read files only: no --timeout)."""
    zero = watch_imgpull(*command, "/dev/zero", time_limit=30, rss_limit=RSS_KILL)
    assert_secure_outcome(
        zero, code=EXIT_USAGE, timeout=None, within=10, contains="/dev/zero: a binary file"
    )
    big = tmp_path / "big.yaml"
    big.write_bytes(b"# x\n" * 300_000)
    capped = watch_imgpull(
        *command, str(big), "--max-size", "1M", time_limit=30, rss_limit=RSS_KILL
    )
    assert_secure_outcome(
        capped, code=EXIT_USAGE, timeout=None, within=10, contains="larger than the 1 MB limit"
    )


@pytest.mark.parametrize("command", [["images"], ["rewrite", "--to", "r.local"]])
def test_same_depth_limit_for_both_commands(command: list[str]) -> None:
    deep = ("[" * 1001 + "]" * 1001 + "\n").encode()
    done = run_imgpull(*command, "-", input=deep)
    assert_clean_failure(done, code=EXIT_USAGE, contains="nested more than 1000 levels deep")
    assert "standard input:1:" in done.stderr.decode()
    fine = ("[" * 990 + "]" * 990 + "\n").encode()
    assert run_imgpull(*command, "-", input=fine).returncode == 0


def test_standard_input_is_named_and_counted() -> None:
    bad = run_imgpull("images", "-", input=POD.format("Nginx:1").encode())
    assert_clean_failure(bad, code=EXIT_USAGE, contains="standard input:6:12: invalid reference")
    done = run_imgpull("rewrite", "-", "--mirror", "quay.io=q.local",
                       input=(POD.format("quay.io/a/b:1") * 2).encode())  # fmt: skip
    assert done.returncode == 0, done.stderr
    assert lines(done.stderr) == ["would rewrite 2 image values in standard input"]
    assert done.stdout.decode().count("q.local/a/b:1") == 2


def test_skipped_strings_are_counted_or_listed() -> None:
    webapp = DATA / "manifests" / "helm" / "webapp-rendered.yaml"
    done = run_imgpull("images", str(webapp))
    assert done.returncode == 0
    assert lines(done.stderr) == [
        "imgpull: left alone 4 image-like strings that no rule finds (not in an image "
        "field); --verbose lists them"
    ]
    verbose = run_imgpull("images", str(webapp), "--verbose")
    assert (
        f"imgpull: skipped {webapp}:31:10: quay.io/fake/configmap-key:v1 (not in an image "
        "field)" in lines(verbose.stderr)
    )
    assert run_imgpull("images", str(webapp), "-q").stderr == b""

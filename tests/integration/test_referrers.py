"""Signatures, attestations and SBOMs travel with the image (issue 14): found by cosign's
tags and by the OCI 1.1 fallback tag (distribution 2.8 has no referrers API), carried in
the archive's OCI view, pushed and copied with their digests unchanged, and required."""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import urllib3

from imgpull.errors import EXIT_INTEGRITY, EXIT_OK
from tests.cli import assert_clean_failure, run_imgpull
from tests.conftest import FreshEnv
from tests.fixtures.faultproxy import FaultProxy, Replace, Rule, Status
from tests.fixtures.images import Pusher, StandardImages
from tests.fixtures.registry import RegistryServer, start_registry
from tests.fixtures.signing import (
    OCI_INDEX,
    OCI_MANIFEST,
    SPDX,
    Keys,
    Signed,
    push_sbom_referrer,
    push_signature,
    sign_image,
)

ACCEPT = ", ".join(
    [
        "application/vnd.oci.image.index.v1+json",
        "application/vnd.oci.image.manifest.v1+json",
        "application/vnd.docker.distribution.manifest.v2+json",
        "application/vnd.docker.distribution.manifest.list.v2+json",
    ]
)

pytestmark = pytest.mark.usefixtures("fresh_env")


def manifest_at(host: str, repo: str, reference: str) -> tuple[str, bytes] | None:
    """(digest, bytes) of what ``repo:reference`` holds, or None."""
    answer = urllib3.request("GET", f"http://{host}/v2/{repo}/manifests/{reference}",
                             headers={"Accept": ACCEPT})  # fmt: skip
    if answer.status == 404:
        return None
    assert answer.status == 200, (answer.status, answer.data[:300])
    return "sha256:" + hashlib.sha256(answer.data).hexdigest(), answer.data


@pytest.fixture(scope="module")
def keys(tmp_path_factory: pytest.TempPathFactory) -> Keys:
    return Keys.make(tmp_path_factory.mktemp("keys"))


@pytest.fixture(scope="module")
def signed(registry: RegistryServer, standard_images: StandardImages, keys: Keys) -> Signed:
    """test/hello:1 copied to signed/hello:1, with a signature, an attestation and an SBOM."""
    hello = standard_images.hello
    done = run_imgpull("copy", "-q", hello.ref(registry.host), f"{registry.host}/signed/hello:1")
    assert done.returncode == 0, done.stderr.decode()
    pusher = Pusher(registry.url)
    try:
        return sign_image(pusher, "signed/hello", hello.manifest_digest, len(hello.built.manifest),
                          keys.private)  # fmt: skip
    finally:
        pusher.close()


@pytest.fixture
def empty(tmp_path: Path) -> Iterator[RegistryServer]:
    server = start_registry(tmp_path / "empty", storage=tmp_path / "empty-storage")
    yield server
    server.stop()


def ok(*args: str) -> str:
    done = run_imgpull(*args)
    assert done.returncode == EXIT_OK, done.stderr.decode()
    return done.stdout.decode()


def assert_carried(host: str, repo: str, signed: Signed) -> None:
    """The destination has both cosign tags and the fallback tag's index, same digests."""
    signature = manifest_at(host, repo, signed.signature_tag)
    attestation = manifest_at(host, repo, signed.attestation_tag)
    fallback = manifest_at(host, repo, signed.fallback_tag)
    assert signature and signature[0] == signed.signature_digest
    assert attestation and attestation[0] == signed.attestation_digest
    assert fallback is not None, "no fallback tag for the SBOM referrer"
    listed = [m["digest"] for m in json.loads(fallback[1])["manifests"]]
    assert signed.sbom_digest in listed
    sbom = manifest_at(host, repo, signed.sbom_digest)
    assert sbom and sbom[0] == signed.sbom_digest
    for digest in (signed.signature_digest, signed.attestation_digest, signed.sbom_digest):
        raw = manifest_at(host, repo, digest)
        assert raw is not None
        for layer in json.loads(raw[1])["layers"]:
            answer = urllib3.request("HEAD", f"http://{host}/v2/{repo}/blobs/{layer['digest']}")
            assert answer.status == 200, f"blob {layer['digest']} missing"


def test_inspect_lists_what_refers_to_the_image(registry: RegistryServer, signed: Signed) -> None:
    found = json.loads(ok("inspect", f"{registry.host}/signed/hello:1"))
    digests = {r["digest"]: r for r in found["referrers"]}
    assert set(digests) == {signed.signature_digest, signed.attestation_digest, signed.sbom_digest}
    assert digests[signed.sbom_digest]["artifactType"] == "application/spdx+json"
    assert digests[signed.signature_digest]["found"] == f"tag {signed.signature_tag}"


def test_pull_push_pull_keeps_every_referrer(
    registry: RegistryServer, signed: Signed, empty: RegistryServer, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.tar"
    ok("pull", "-q", "--referrers", f"{registry.host}/signed/hello:1", "-o", str(bundle))
    ok("push", "-q", str(bundle), f"{empty.host}/mirror")
    assert_carried(empty.host, "mirror/signed/hello", signed)
    again = tmp_path / "again.tar"
    ok("pull", "-q", "--referrers", f"{empty.host}/mirror/signed/hello:1", "-o", str(again))
    found = json.loads(ok("inspect", f"{empty.host}/mirror/signed/hello:1"))
    assert {r["digest"] for r in found["referrers"]} == {
        signed.signature_digest, signed.attestation_digest, signed.sbom_digest,
    }  # fmt: skip


def test_docker_view_ignores_referrers(
    registry: RegistryServer, signed: Signed, tmp_path: Path
) -> None:
    bundle = tmp_path / "bundle.tar"
    ok("pull", "-q", "--referrers", f"{registry.host}/signed/hello:1", "-o", str(bundle))
    import tarfile

    with tarfile.open(bundle) as tar:
        docker = json.load(tar.extractfile("manifest.json"))  # type: ignore[arg-type]
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    assert len(docker) == 1  # docker load sees the image alone
    listed = {m["digest"] for m in index["manifests"]}
    assert {signed.signature_digest, signed.attestation_digest, signed.sbom_digest} <= listed


def test_copy_carries_referrers(
    registry: RegistryServer, signed: Signed, empty: RegistryServer
) -> None:
    ok("copy", "-q", "--referrers", f"{registry.host}/signed/hello:1", f"{empty.host}/c/hello:1")
    assert_carried(empty.host, "c/hello", signed)


def test_require_signature_accepts_the_right_key(
    registry: RegistryServer, signed: Signed, keys: Keys, tmp_path: Path
) -> None:
    out = tmp_path / "ok.tar"
    ok("pull", "-q", "--require-signature", str(keys.public_pem),
       f"{registry.host}/signed/hello:1", "-o", str(out))  # fmt: skip
    assert out.is_file()


@pytest.mark.parametrize("case", ["wrong key", "unsigned", "tampered", "other digest"])
def test_require_signature_refuses(
    registry: RegistryServer,
    signed: Signed,
    standard_images: StandardImages,
    keys: Keys,
    tmp_path: Path,
    fresh_env: FreshEnv,
    case: str,
) -> None:
    key, repo = keys.public_pem, "signed/hello"
    pusher = Pusher(registry.url)
    hello = standard_images.hello
    try:
        if case == "wrong key":
            key = keys.other_pem
        elif case == "unsigned":
            repo = "test/hello"
        elif case in ("tampered", "other digest"):
            repo = f"signed/{case.replace(' ', '-')}"
            copied = run_imgpull(
                "copy", "-q", hello.ref(registry.host), f"{registry.host}/{repo}:1"
            )
            assert copied.returncode == 0, copied.stderr.decode()
            if case == "tampered":
                push_signature(pusher, repo, hello.manifest_digest, keys.private, tamper=True)
            else:  # a good signature, but of another image's digest
                from tests.fixtures.signing import payload_for

                other = "sha256:" + "ab" * 32
                push_signature(pusher, repo, hello.manifest_digest, keys.private,
                               payload=payload_for(repo, other))  # fmt: skip
    finally:
        pusher.close()
    out = tmp_path / "refused.tar"
    done = run_imgpull("pull", "-q", "--require-signature", str(key),
                       f"{registry.host}/{repo}:1", "-o", str(out))  # fmt: skip
    reason = {"unsigned": "not signed", "other digest": "not of this image"}.get(case, "key")
    assert_clean_failure(done, code=EXIT_INTEGRITY, contains=reason, output=out)


def test_require_signature_with_copy_publishes_nothing_unsigned(
    registry: RegistryServer, keys: Keys, empty: RegistryServer
) -> None:
    done = run_imgpull("copy", "-q", "--require-signature", str(keys.public_pem),
                       f"{registry.host}/test/hello:1", f"{empty.host}/x/hello:1")  # fmt: skip
    assert_clean_failure(done, code=EXIT_INTEGRITY, contains="not signed")
    assert manifest_at(empty.host, "x/hello", "1") is None


def test_multi_platform_referrers_of_the_index_and_each_child(
    registry: RegistryServer,
    standard_images: StandardImages,
    keys: Keys,
    empty: RegistryServer,
    tmp_path: Path,
) -> None:
    multi, host = standard_images.multi_oci, standard_images.host_platform
    source = f"{registry.host}/signed/multi:1"
    ok("copy", "-q", "--all-platforms", f"{registry.host}/{multi.repo}:{multi.tag}", source)
    child = multi.images[host]
    pusher = Pusher(registry.url)
    try:
        signature = push_signature(pusher, "signed/multi", multi.digest, keys.private)
        sbom = push_sbom_referrer(pusher, "signed/multi", multi.platforms[host],
                                  len(child.built.manifest))  # fmt: skip
    finally:
        pusher.close()

    bundle = tmp_path / "all.tar"
    ok("pull", "-q", "--referrers", "--all-platforms", source, "-o", str(bundle))
    ok("push", "-q", str(bundle), f"{empty.host}/m")
    hex_of = {d: d.split(":", 1)[1] for d in (multi.digest, multi.platforms[host])}
    carried = manifest_at(empty.host, "m/signed/multi", f"sha256-{hex_of[multi.digest]}.sig")
    assert carried and carried[0] == signature
    fallback = manifest_at(empty.host, "m/signed/multi", f"sha256-{hex_of[multi.platforms[host]]}")
    assert fallback and sbom in {m["digest"] for m in json.loads(fallback[1])["manifests"]}

    # One platform: the index's signature is checked at pull time, then carried with a
    # warning, since the index it signs stays behind.
    one = tmp_path / "one.tar"
    done = run_imgpull("pull", "--require-signature", str(keys.public_pem), source,
                       "-o", str(one))  # fmt: skip
    assert done.returncode == EXIT_OK, done.stderr.decode()
    assert b"not in the archive" in done.stderr


def test_inspect_still_describes_the_image_when_referrers_cannot_be_listed(
    fault_proxy: FaultProxy, signed: Signed
) -> None:
    """A registry that answers 403 to the listing and the fallback tag: the image is
    described, and ``referrersError`` says why its referrers are not."""
    denied = Status(403, {"Content-Type": "application/json"},
                    b'{"errors":[{"code":"DENIED","message":"no"}]}')  # fmt: skip
    fault_proxy.add_rule(Rule(path=r"/v2/.+/referrers/.+", times=None, action=denied))
    fault_proxy.add_rule(Rule(path=rf"/v2/.+/manifests/{signed.fallback_tag}", times=None,
                              action=denied))  # fmt: skip
    found = json.loads(ok("inspect", "--retries", "0", fault_proxy.ref("signed/hello", "1")))
    assert found["digest"] == signed.subject
    assert found["referrers"] == [] and "denied" in found["referrersError"].lower()


# -- registries with the OCI 1.1 referrers API ---------------------------------------------
# distribution 2.8 has none: a proxy in front of it answers the API's listing (and, for a
# destination, the ``OCI-Subject`` header) the way OCI 1.1 registries do, while every
# manifest and blob still comes from the real registry.

UNKNOWN = b'{"errors":[{"code":"MANIFEST_UNKNOWN","message":"manifest unknown"}]}'
NOT_FOUND = Status(404, {"Content-Type": "application/json"}, UNKNOWN)


def referrers_listing(host: str, signed: Signed) -> bytes:
    """What an OCI 1.1 registry answers for the subject: the SBOM referrer's descriptor."""
    found = manifest_at(host, signed.repository, signed.sbom_digest)
    assert found is not None
    entry = {"mediaType": OCI_MANIFEST, "digest": found[0], "size": len(found[1]),
             "artifactType": SPDX}  # fmt: skip
    return json.dumps({"schemaVersion": 2, "mediaType": OCI_INDEX, "manifests": [entry]}).encode()


def test_the_referrers_api_is_asked_where_the_registry_has_it(
    registry: RegistryServer, fault_proxy: FaultProxy, signed: Signed, tmp_path: Path
) -> None:
    listing = Status(200, {"Content-Type": OCI_INDEX}, referrers_listing(registry.host, signed))
    fault_proxy.add_rule(Rule(method="GET", path=rf"/v2/signed/hello/referrers/{signed.subject}",
                              times=None, action=listing))  # fmt: skip
    # No fallback tag: what the listing names can only have come from the API.
    fault_proxy.add_rule(Rule(path=rf"/v2/.+/manifests/{signed.fallback_tag}", times=None,
                              action=NOT_FOUND))  # fmt: skip
    found = json.loads(ok("inspect", fault_proxy.ref("signed/hello", "1")))
    assert signed.sbom_digest in {r["digest"] for r in found["referrers"]}
    bundle = tmp_path / "bundle.tar"
    ok("pull", "-q", "--referrers", fault_proxy.ref("signed/hello", "1"), "-o", str(bundle))
    import tarfile

    with tarfile.open(bundle) as tar:
        index = json.load(tar.extractfile("index.json"))  # type: ignore[arg-type]
    carried = {m["digest"]: m for m in index["manifests"]}
    assert signed.sbom_digest in carried
    assert carried[signed.sbom_digest]["annotations"]["dev.imgpull.subject"] == signed.subject
    assert fault_proxy.requests_to("GET", r"/v2/.+/referrers/.+")


def test_a_destination_that_indexes_subjects_gets_no_fallback_tag(
    registry: RegistryServer,
    fault_proxy_factory: Callable[..., FaultProxy],
    signed: Signed,
    empty: RegistryServer,
) -> None:
    """A registry that answers a referrer's PUT with ``OCI-Subject`` keeps its own index:
    imgpull leaves the fallback tag alone there."""
    destination = fault_proxy_factory(empty)
    took = Replace(b"", headers={"OCI-Subject": signed.subject}, fix_digest=False)
    destination.add_rule(Rule(method="PUT", path=rf"/v2/.+/manifests/{signed.sbom_digest}",
                              times=None, action=took))  # fmt: skip
    ok("copy", "-q", "--referrers", f"{registry.host}/signed/hello:1",
       f"{destination.host}/c/hello:1")  # fmt: skip
    sbom = manifest_at(empty.host, "c/hello", signed.sbom_digest)
    assert sbom and sbom[0] == signed.sbom_digest
    assert destination.requests_to("PUT", rf"/v2/.+/manifests/{signed.sbom_digest}")
    assert not destination.requests_to("PUT", rf"/v2/.+/manifests/{signed.fallback_tag}")
    assert manifest_at(empty.host, "c/hello", signed.fallback_tag) is None
    # The cosign tags go as tags, as everywhere.
    signature = manifest_at(empty.host, "c/hello", signed.signature_tag)
    assert signature and signature[0] == signed.signature_digest

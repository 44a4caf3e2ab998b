from __future__ import annotations

import hashlib
import io
from pathlib import Path

import pytest
from pydantic import ValidationError

from modelops.domain.digests import canonical_json, root_digest, sha256_stream
from modelops.domain.entities import semver_sort_key
from modelops.domain.manifest import FileEntry, Manifest


def test_root_digest_is_sha256_over_raw_file_digests_in_sorted_path_order() -> None:
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    expected = hashlib.sha256(bytes.fromhex(a) + bytes.fromhex(b)).hexdigest()
    assert (
        root_digest([("z/b.bin", b), ("a.bin", a)])
        == hashlib.sha256(bytes.fromhex(a) + bytes.fromhex(b)).hexdigest()
    )
    assert root_digest([("a", a), ("b", b)]) == expected
    assert root_digest([("a", b), ("b", a)]) != expected


def test_sha256_stream_matches_hashlib_across_chunk_boundaries() -> None:
    data = bytes(range(256)) * 10_000
    digest, size = sha256_stream(io.BytesIO(data), chunk_bytes=4096 + 7)
    assert (digest, size) == (hashlib.sha256(data).hexdigest(), len(data))


def test_manifest_of_directory_hashes_files_skips_git_and_sorts(tmp_path: Path) -> None:
    (tmp_path / "weights").mkdir()
    (tmp_path / "weights" / "w.bin").write_bytes(b"\x00" * 10)
    (tmp_path / "config.json").write_text("{}")
    (tmp_path / ".git").mkdir()
    (tmp_path / ".git" / "HEAD").write_text("ref")
    manifest = Manifest.of_directory(tmp_path)
    assert [f.path for f in manifest.files] == ["config.json", "weights/w.bin"]
    assert manifest.total_size == 12
    assert manifest.files[1].sha256 == hashlib.sha256(b"\x00" * 10).hexdigest()


def test_manifest_refuses_symlinks(tmp_path: Path) -> None:
    (tmp_path / "real").write_text("x")
    (tmp_path / "link").symlink_to(tmp_path / "real")
    with pytest.raises(ValueError, match="symlinks"):
        Manifest.of_directory(tmp_path)


@pytest.mark.parametrize("bad", ["/abs", "../up", "a/../b", "a//b", "a\\b", ".git/config", ""])
def test_file_entry_rejects_unsafe_paths(bad: str) -> None:
    with pytest.raises(ValidationError):
        FileEntry(path=bad, size=1, sha256="0" * 64)


def test_manifest_rejects_duplicate_paths() -> None:
    entry = FileEntry(path="a", size=1, sha256="0" * 64)
    with pytest.raises(ValidationError, match="unique"):
        Manifest(files=(entry, entry))


def test_manifest_digest_changes_with_names_while_root_digest_does_not() -> None:
    one = Manifest(files=(FileEntry(path="a", size=1, sha256="1" * 64),))
    two = Manifest(files=(FileEntry(path="b", size=1, sha256="1" * 64),))
    assert one.root_digest == two.root_digest
    assert one.manifest_digest != two.manifest_digest


def test_canonical_json_sorts_keys_and_has_no_whitespace() -> None:
    assert canonical_json({"b": 1, "a": [1.0, "x"]}) == b'{"a":[1,"x"],"b":1}'


def test_semver_sort_key_orders_prereleases_before_releases_and_numbers_numerically() -> None:
    versions = ["1.10.0", "1.2.0", "1.2.0-rc.1", "0.9.9", "2.0.0"]
    assert sorted(versions, key=semver_sort_key) == [
        "0.9.9",
        "1.2.0-rc.1",
        "1.2.0",
        "1.10.0",
        "2.0.0",
    ]


def test_root_digest_orders_paths_component_by_component_like_openssf() -> None:
    # model_signing sorts "config/a.json" before "config.json" ('/' is compared as a
    # separator, not as the character 0x2f that sorts after '.').
    a, b = hashlib.sha256(b"a").hexdigest(), hashlib.sha256(b"b").hexdigest()
    expected = hashlib.sha256(bytes.fromhex(a) + bytes.fromhex(b)).hexdigest()
    assert root_digest([("config.json", b), ("config/a.json", a)]) == expected
    manifest = Manifest(
        files=(
            FileEntry(path="config.json", size=1, sha256=b),
            FileEntry(path="config/a.json", size=1, sha256=a),
        )
    )
    assert [f.path for f in manifest.files] == ["config/a.json", "config.json"]

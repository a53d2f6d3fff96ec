"""My avatar on SQLite and PostgreSQL: uploaded as multipart, checked by its first bytes (PNG, JPEG,
WebP, GIF) and its size, served to signed-in users with its type and cache headers, removed."""

from __future__ import annotations

import struct
import zlib

from avocado.platform.accounts.avatars import MAX_AVATAR_BYTES, image_type
from tests.platform.support import RunningPlatform, Session


def png(width: int = 1, height: int = 1, rgb: tuple[int, int, int] = (46, 125, 50)) -> bytes:
    """A real PNG image: one colour, ``width`` by ``height``."""

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))

    rows = b"".join(b"\x00" + bytes(rgb) * width for _ in range(height))
    header = struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0)
    return (
        b"\x89PNG\r\n\x1a\n"
        + chunk(b"IHDR", header)
        + chunk(b"IDAT", zlib.compress(rows))
        + chunk(b"IEND", b"")
    )


GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
JPEG = b"\xff\xd8\xff\xe0\x00\x10JFIF\x00\x01\x01\x00\x00\x01\x00\x01\x00\x00\xff\xd9"
WEBP = b"RIFF\x1a\x00\x00\x00WEBPVP8L\x0d\x00\x00\x00/\x00\x00\x00\x10\x07\x10\x11\x11\x88\x88\xfe\x07\x00"


def _two(platform: RunningPlatform) -> tuple[Session, Session, str]:
    platform.register("ada@example.com")
    ada = platform.sign_in("ada@example.com")
    bob_id = platform.register("bob@example.com")["id"]
    ada.patch(f"/api/v1/admin/users/{bob_id}", json={"status": "active"})
    return ada, platform.sign_in("bob@example.com"), ada.get("/api/v1/users/me").json()["id"]


def test_the_image_type_is_read_from_its_bytes() -> None:
    assert image_type(png()) == "image/png"
    assert image_type(GIF) == "image/gif"
    assert image_type(JPEG) == "image/jpeg"
    assert image_type(WEBP) == "image/webp"
    for other in (b"", b"<svg xmlns='http://www.w3.org/2000/svg'/>", b"RIFF\x00\x00\x00\x00WAVE", b"\x89PN"):
        assert image_type(other) is None


def test_upload_show_and_remove_my_avatar(platform: RunningPlatform) -> None:
    ada, bob, ada_id = _two(platform)
    assert ada.get(f"/api/v1/users/{ada_id}/avatar").status_code == 404
    image = png(8, 8)
    stored = ada.request("PUT", "/api/v1/users/me/avatar", files={"file": ("me.bin", image, "text/plain")})
    assert stored.status_code == 200, stored.text
    body = stored.json()
    assert body["content_type"] == "image/png" and body["size"] == len(
        image
    )  # the bytes decide, not the claim
    assert body["url"] == f"/api/v1/users/{ada_id}/avatar"

    for viewer in (ada, bob):  # any signed-in user sees it
        shown = viewer.get(body["url"])
        assert shown.status_code == 200 and shown.content == image
        assert shown.headers["content-type"] == "image/png"
        assert shown.headers["cache-control"] == "private, max-age=60"
        assert shown.headers["x-content-type-options"] == "nosniff"
        etag = shown.headers["etag"]
        again = viewer.http.get(body["url"], headers={**viewer.auth, "If-None-Match": etag})
        assert again.status_code == 304 and again.content == b""
    assert ada.get("/api/v1/users/me/avatar").content == image
    with platform.client() as anonymous:
        assert anonymous.get(body["url"]).status_code == 401

    replaced = ada.request("PUT", "/api/v1/users/me/avatar", files={"file": ("me.gif", GIF, "image/gif")})
    assert replaced.status_code == 200 and replaced.json()["content_type"] == "image/gif"
    newer = bob.http.get(body["url"], headers={**bob.auth, "If-None-Match": etag})
    assert newer.status_code == 200 and newer.content == GIF and newer.headers["content-type"] == "image/gif"

    assert ada.delete("/api/v1/users/me/avatar").status_code == 204
    gone = bob.get(body["url"])
    assert gone.status_code == 404 and gone.json() == {"detail": "no avatar"}
    assert ada.delete("/api/v1/users/me/avatar").status_code == 204  # nothing left to remove


def test_wrong_types_and_sizes_are_refused_and_nothing_is_stored(platform: RunningPlatform) -> None:
    ada, _, ada_id = _two(platform)
    for data, name in (
        (b"<svg xmlns='http://www.w3.org/2000/svg'><script>alert(1)</script></svg>", "x.svg"),
        (b"%PDF-1.7 not an image", "x.png"),
        (b"", "empty.png"),
    ):
        refused = ada.request("PUT", "/api/v1/users/me/avatar", files={"file": (name, data, "image/png")})
        assert refused.status_code == 415, (name, refused.text)
        assert "PNG, JPEG, WEBP, GIF" in refused.json()["detail"]

    too_big = png() + b"\x00" * (MAX_AVATAR_BYTES + 1 - len(png()))
    refused = ada.request("PUT", "/api/v1/users/me/avatar", files={"file": ("big.png", too_big, "image/png")})
    assert refused.status_code == 413 and "512 KiB" in refused.json()["detail"]
    just_fits = png() + b"\x00" * (MAX_AVATAR_BYTES - len(png()))
    assert (
        ada.request("PUT", "/api/v1/users/me/avatar", files={"file": ("ok.png", just_fits)}).status_code
        == 200
    )
    assert ada.delete("/api/v1/users/me/avatar").status_code == 204

    huge = ada.request(
        "PUT", "/api/v1/users/me/avatar", files={"file": ("huge.png", png() + b"\x00" * 3 * 2**20)}
    )
    assert huge.status_code == 413  # past the request body limit: refused before it is read

    missing = ada.request("PUT", "/api/v1/users/me/avatar", data={"other": "x"})
    assert missing.status_code == 422 and "file" in missing.json()["detail"]
    as_json = ada.request("PUT", "/api/v1/users/me/avatar", json={"file": "aGVsbG8="})
    assert as_json.status_code in (400, 422)
    assert ada.get(f"/api/v1/users/{ada_id}/avatar").status_code == 404  # nothing stored

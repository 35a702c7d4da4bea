"""VAPID keys: from the configured file (PEM or raw base64url), else generated once, 0600."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from quakealert.channels.vapid import load_vapid
from quakealert.config import Settings
from quakealert.errors import ConfigError
from quakealert.store.subscribers import b64url


def settings(tmp_path, **webpush) -> Settings:
    return Settings(store_path=tmp_path / "q.sqlite", var_dir=tmp_path / "var",
                    sections={"webpush": webpush})


def test_generated_once_with_owner_only_mode(tmp_path):
    """Without a configured key one is generated into var_dir (0600) and reused afterwards."""
    a = load_vapid(settings(tmp_path))
    pem = tmp_path / "var" / "vapid_private.pem"
    assert pem.stat().st_mode & 0o777 == 0o600
    assert load_vapid(settings(tmp_path)).application_server_key == a.application_server_key


@pytest.mark.parametrize("form", ["pem", "raw"])
def test_configured_key_file(tmp_path, form):
    """A configured PEM or raw base64url private key is used, with the configured subject."""
    key = ec.generate_private_key(ec.SECP256R1())
    path = tmp_path / "vapid.key"
    if form == "pem":
        path.write_bytes(key.private_bytes(serialization.Encoding.PEM,
                                           serialization.PrivateFormat.PKCS8,
                                           serialization.NoEncryption()))
    else:
        path.write_text(b64url(key.private_numbers().private_value.to_bytes(32, "big")))
    v = load_vapid(settings(tmp_path, vapid_private_key_file=str(path),
                            vapid_subject="https://quake.example.org/contact"))
    expected = key.public_key().public_bytes(serialization.Encoding.X962,
                                             serialization.PublicFormat.UncompressedPoint)
    assert v.public_key == expected and v.subject == "https://quake.example.org/contact"
    assert not (tmp_path / "var" / "vapid_private.pem").exists()


def test_bad_subject_and_missing_file(tmp_path):
    """The subject must be mailto: or https:; a configured file must exist."""
    with pytest.raises(ConfigError):
        load_vapid(settings(tmp_path, vapid_subject="duty@example.org"))
    with pytest.raises(ConfigError):
        load_vapid(settings(tmp_path, vapid_private_key_file=str(tmp_path / "nope")))

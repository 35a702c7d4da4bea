"""CSV bulk import: good rows are stored, bad rows reported by line number."""

from __future__ import annotations

from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec

from quakealert.cli import main
from quakealert.store.sqlite import Store
from quakealert.store.subscribers import b64url

P256 = b64url(ec.generate_private_key(ec.SECP256R1()).public_key().public_bytes(
    serialization.Encoding.X962, serialization.PublicFormat.UncompressedPoint))
AUTH = b64url(b"0123456789abcdef")


def test_import_and_count(tmp_path, capsys):
    """Four good rows imported, three bad rows named by line; count shows channels and areas."""
    db = tmp_path / "q.sqlite"
    cfg = tmp_path / "q.toml"
    cfg.write_text(f'[store]\npath = "{db}"\nvar_dir = "{tmp_path}"\n', encoding="utf-8")
    csv_file = tmp_path / "subs.csv"
    csv_file.write_text(
        "latitude,longitude,languages,channel,url,endpoint,p256dh,auth,min_intensity\n"
        f"29.6543,91.1321,zh;bo,webpush,,https://push.example.org/a,{P256},{AUTH},3\n"
        "29.85,92.25,en,webhook,https://gw.example.org/sms,,,,4\n"
        "95,91.1,zh,webhook,https://gw.example.org/x,,,,3\n"
        f"29.6,91.1,zh;fr,webpush,,https://push.example.org/b,{P256},{AUTH},3\n"
        "29.7,91.2,bo,webhook,https://gw.example.org/y,,,,\n"
        "29.7,91.2,bo,pager,https://gw.example.org/z,,,,\n"
        f"29.7,91.0,,webpush,,https://push.example.org/c,{P256},{AUTH},\n",
        encoding="utf-8")
    rc = main(["subscribers", "import", str(csv_file), "--config", str(cfg)])
    out, err = capsys.readouterr()
    assert rc == 1
    assert "imported: 4" in out and "rejected: 3" in out
    assert "line 4: latitude" in err and "line 5: unknown language 'fr'" in err
    assert "line 7: channel" in err
    assert out.count("secret=") == 2  # generated for the two webhook rows
    store = Store.open(db)
    rows = store.conn.execute("SELECT latitude, longitude, languages, min_intensity FROM"
                              " subscribers ORDER BY id").fetchall()
    store.close()
    assert [tuple(r) for r in rows] == [(29.65, 91.13, "zh,bo", 3), (29.85, 92.25, "en", 4),
                                        (29.7, 91.2, "bo", 3), (29.7, 91.0, "zh,bo", 3)]
    assert main(["subscribers", "count", "--config", str(cfg)]) == 0
    out, _ = capsys.readouterr()
    assert "total: 4" in out and "channel.webpush: 2" in out and "channel.webhook: 2" in out
    assert "area." in out

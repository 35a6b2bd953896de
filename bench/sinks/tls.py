"""A throwaway CA and a server certificate for 127.0.0.1, written as PEM files."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import trustme


@dataclass(frozen=True)
class TLSFiles:
    ca: Path
    cert_chain: Path
    key: Path


def make(directory: Path) -> TLSFiles:
    directory.mkdir(parents=True, exist_ok=True)
    ca = trustme.CA(organization_name="pushgate bench")
    server = ca.issue_cert("127.0.0.1", "localhost")
    files = TLSFiles(directory / "ca.pem", directory / "server.pem", directory / "server.key")
    ca.cert_pem.write_to_path(str(files.ca))
    server.private_key_pem.write_to_path(str(files.key))
    with files.cert_chain.open("wb") as out:
        for blob in server.cert_chain_pems:
            out.write(blob.bytes())
    files.key.chmod(0o644)  # nginx reads it as root, but keep the tree readable for its workers
    return files

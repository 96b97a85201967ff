"""Proof of who issued an operator command: an HMAC-SHA256 (itsdangerous) over the command's identity and
content, keyed by a deployment secret that the console, the CLI and the command consumer share
(PPU_COMMAND_SIGNING_KEY). The command consumer trusts nothing a message merely names: a command whose proof
is missing or does not match is rejected."""

from __future__ import annotations

import hashlib

from itsdangerous import BadSignature, Signer

from schemas.commands import ConfirmSupportRequested

SALT = "ppu.command.confirm_support.v1"


def _signer(key: str) -> Signer:
    return Signer(key, salt=SALT, digest_method=hashlib.sha256)


def _content(command: ConfirmSupportRequested) -> bytes:
    d = command.data
    # Every field that decides what the command does, and its id (a proof cannot be moved to another command).
    return "\n".join([str(command.id), d.meter_number, d.operator, d.institution_id]).encode()


def sign(command: ConfirmSupportRequested, key: str) -> ConfirmSupportRequested:
    proof = _signer(key).get_signature(_content(command)).decode()
    return command.model_copy(update={"data": command.data.model_copy(update={"proof": proof})})


def verify(command: ConfirmSupportRequested, key: str) -> bool:
    if not command.data.proof:
        return False
    try:
        return _signer(key).verify_signature(_content(command), command.data.proof.encode())
    except BadSignature:
        return False

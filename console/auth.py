"""Console identities: login with institution details, server-side sessions, roles, CSRF tokens, throttling."""

from __future__ import annotations

import hashlib
import secrets
from dataclasses import dataclass
from typing import Annotated, Any

from fastapi import Depends, HTTPException, Request

from db.audit import AuditRow, write_audit
from kernel.dbconn import Db
from kernel.passwords import verify_password

ROLES = {"viewer": 0, "operator": 1, "admin": 2}
ACCOUNT_LIMIT, ADDRESS_LIMIT, THROTTLE_MINUTES = 5, 20, 15
SESSION_HOURS = 8


@dataclass(frozen=True)
class User:
    user_id: int
    institution_id: str
    username: str
    role: str
    operates_deployment: bool = False  # its institution runs the deployment (institutions.operates_deployment)

    def may(self, role: str) -> bool:
        return ROLES[self.role] >= ROLES[role]

    @property
    def deployment_admin(self) -> bool:
        """An admin of the institution that runs the deployment: works what belongs to no one institution."""
        return self.operates_deployment and self.role == "admin"


class LoginRequired(Exception):
    """No valid session: pages redirect to the login form, the API answers 401."""


def csrf_token(request: Request) -> str:
    """The session's synchronizer token (made on first use). Hand-written: it is a few lines bound to our own
    signed session, where the CSRF middlewares on offer use double-submit cookies instead."""
    token = request.session.get("csrf")
    if not isinstance(token, str):
        token = secrets.token_urlsafe(32)
        request.session["csrf"] = token
    return token


def check_csrf(request: Request, presented: str | None) -> None:
    expected = request.session.get("csrf")
    if not isinstance(expected, str) or not presented or not secrets.compare_digest(expected, presented):
        raise HTTPException(403, "missing or invalid CSRF token")


async def throttled(conn: Db, institution_id: str, username: str, address: str) -> bool:
    counts = await conn.fetchrow(
        """SELECT count(*) FILTER (WHERE throttle_key = $1) AS account,
                  count(*) FILTER (WHERE throttle_key = $2) AS address
           FROM login_failures WHERE throttle_key IN ($1, $2) AND at > now() - make_interval(mins => $3)""",
        f"account:{institution_id}/{username}",
        f"address:{address}",
        THROTTLE_MINUTES,
    )
    assert counts is not None
    return bool(counts["account"] >= ACCOUNT_LIMIT or counts["address"] >= ADDRESS_LIMIT)


async def authenticate(conn: Db, institution_id: str, username: str, password: str, address: str) -> User | str:
    """The user, or why not (the same words for a wrong user and a wrong password)."""
    if await throttled(conn, institution_id, username, address):
        return f"too many failed logins; try again in {THROTTLE_MINUTES} minutes"
    row = await conn.fetchrow(
        "SELECT user_id, institution_id, username, role, password_hash FROM console_users "
        "WHERE institution_id = $1 AND username = $2",
        institution_id,
        username,
    )
    if row is None or not verify_password(row["password_hash"], password):
        await conn.execute(
            "INSERT INTO login_failures (throttle_key) VALUES ($1), ($2)",
            f"account:{institution_id}/{username}",
            f"address:{address}",
        )
        return "wrong institution, user name or password"
    return User(row["user_id"], row["institution_id"], row["username"], row["role"])


def _digest(session_id: str) -> str:
    # Stored hashed: a copy of the table does not hand out live sessions.
    return hashlib.sha256(session_id.encode()).hexdigest()


async def start_session(conn: Db, request: Request, user: User) -> None:
    # A new session on login (no fixation): nothing from before survives, the CSRF token included.
    request.session.clear()
    session_id = secrets.token_urlsafe(32)
    await conn.execute("DELETE FROM console_sessions WHERE expires_at < now() - interval '1 day'")
    await conn.execute(
        """INSERT INTO console_sessions (session_hash, user_id, expires_at)
           VALUES ($1, $2, now() + make_interval(hours => $3))""",
        _digest(session_id),
        user.user_id,
        SESSION_HOURS,
    )
    request.session.update({"uid": user.user_id, "sid": session_id})
    csrf_token(request)


async def end_session(conn: Db, request: Request) -> None:
    """Logout: the session is revoked on the server, so a copy of the cookie is worthless too."""
    session_id = request.session.get("sid")
    if isinstance(session_id, str):
        await conn.execute(
            "UPDATE console_sessions SET revoked_at = now() WHERE session_hash = $1 AND revoked_at IS NULL",
            _digest(session_id),
        )
    request.session.clear()


async def revoke_sessions(conn: Db, user_id: int) -> int:
    """Ends every live session of a user (password reset, role change, `ppu users revoke`)."""
    result = await conn.execute(
        "UPDATE console_sessions SET revoked_at = now() WHERE user_id = $1 AND revoked_at IS NULL", user_id
    )
    return int(result.split()[-1])


async def current_user(request: Request) -> User:
    uid, session_id = request.session.get("uid"), request.session.get("sid")
    if not isinstance(uid, int) or not isinstance(session_id, str):
        raise LoginRequired
    async with request.app.state.pool.acquire() as conn:
        row = await conn.fetchrow(
            """SELECT u.user_id, u.institution_id, u.username, u.role, i.operates_deployment
               FROM console_sessions s JOIN console_users u USING (user_id)
               JOIN institutions i ON i.institution_id = u.institution_id
               WHERE s.session_hash = $1 AND s.user_id = $2 AND s.revoked_at IS NULL AND s.expires_at > now()""",
            _digest(session_id),
            uid,
        )
    if row is None:  # revoked, expired, or the user is gone
        request.session.clear()
        raise LoginRequired
    return User(row["user_id"], row["institution_id"], row["username"], row["role"], row["operates_deployment"])


CurrentUser = Annotated[User, Depends(current_user)]


async def optional_user(request: Request) -> User | None:
    """The logged-in user, if any: error pages keep the sidebar and Log out for them."""
    try:
        return await current_user(request)
    except LoginRequired:
        return None


def require(user: User, role: str) -> None:
    if not user.may(role):
        raise HTTPException(403, f"the {role} role is needed")


async def audit(
    conn: Db,
    user: User | None,
    action: str,
    target: str | None,
    outcome: str,
    details: dict[str, Any] | None = None,
    actor: str | None = None,
    institution_id: str | None = None,
) -> None:
    row = AuditRow(
        user.username if user else actor or "anonymous",
        user.institution_id if user else institution_id,
        action,
        target,
        outcome,
        details or {},
    )
    await write_audit(conn, [row])

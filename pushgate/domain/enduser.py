"""End-user sign-in: an app's JWT settings and the pure check of a token against them.

An app that sets them accepts, on the device routes and the VAPID key route, a JWT its own
backend signed for one of its users (`sub`) instead of an API key. Fetching JWKS documents is
the caller's business (api/signin.py); this module only checks tokens against keys it is given.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

import jwt
from jwt.algorithms import ECAlgorithm, RSAAlgorithm

from pushgate.errors import AuthenticationError, InvalidInputError

ASYMMETRIC = ("RS256", "ES256")
LEEWAY_SECONDS = 30
MAX_ORIGINS = 50


@dataclass(frozen=True, slots=True)
class AuthConfig:
    """What an app accepts: the public half (stored as JSON in `apps.auth`)."""

    issuer: str | None = None
    audience: str | None = None
    public_keys: tuple[str, ...] = ()
    jwks_url: str | None = None
    cors_origins: tuple[str, ...] = ()
    hs256: bool = False

    def algorithms(self) -> list[str]:
        algorithms = ["HS256"] if self.hs256 else []
        if self.public_keys or self.jwks_url:
            algorithms += list(ASYMMETRIC)
        return algorithms

    def to_json(self) -> dict[str, Any]:
        return {
            "issuer": self.issuer,
            "audience": self.audience,
            "public_keys": list(self.public_keys),
            "jwks_url": self.jwks_url,
            "cors_origins": list(self.cors_origins),
            "hs256": self.hs256,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any]) -> AuthConfig:
        return cls(
            issuer=data.get("issuer"),
            audience=data.get("audience"),
            public_keys=tuple(data.get("public_keys") or ()),
            jwks_url=data.get("jwks_url"),
            cors_origins=tuple(data.get("cors_origins") or ()),
            hs256=bool(data.get("hs256")),
        )


def checked_public_key(pem: str) -> str:
    """`pem` if it is an RSA or EC public key in PEM.

    Raises: InvalidInputError on anything else.
    """
    for algorithm in (RSAAlgorithm, ECAlgorithm):
        try:
            algorithm(algorithm.SHA256).prepare_key(pem)
        except (ValueError, TypeError, jwt.InvalidKeyError):
            continue
        return pem.strip() + "\n"
    raise InvalidInputError("not an RSA or EC public key in PEM", field="public_keys")


def checked_origin(origin: str) -> str:
    """A CORS origin as browsers send it: `scheme://host[:port]`, nothing after.

    Raises: InvalidInputError on a wildcard, a path or another scheme.
    """
    parts = urlsplit(origin.strip())
    if (
        parts.scheme not in ("https", "http")
        or not parts.netloc
        or parts.path not in ("", "/")
        or parts.query
        or parts.fragment
        or "*" in origin
    ):
        raise InvalidInputError(
            f"{origin!r} is not an origin such as https://app.example", field="cors_origins"
        )
    return f"{parts.scheme}://{parts.netloc}".lower()


@dataclass(frozen=True, slots=True)
class Keys:
    """The keys a token may be signed with: the HS256 secret, inline PEMs, JWKS keys by kid."""

    secret: str | None = None
    pems: Sequence[str] = ()
    by_kid: Mapping[str, Any] = field(default_factory=dict)


def header_of(token: str) -> dict[str, Any]:
    """The token's unverified header.

    Raises: AuthenticationError `invalid_token` when it is not a JWT.
    """
    try:
        return dict(jwt.get_unverified_header(token))
    except jwt.PyJWTError:
        raise invalid("not a JWT") from None


def subject(token: str, config: AuthConfig, keys: Keys, *, now: float) -> str:
    """The user a valid token names (`sub`), checked at `now` (seconds since the epoch).

    Raises:
        AuthenticationError `invalid_token`: bad signature, expired, wrong issuer or
            audience, no `sub`, or an algorithm the app does not accept.
    """
    header = header_of(token)
    algorithm = header.get("alg")
    if algorithm not in config.algorithms():
        raise invalid(f"algorithm {algorithm!r} is not accepted by this app")
    candidates: list[Any]
    if algorithm == "HS256":
        candidates = [keys.secret] if keys.secret else []
    elif header.get("kid") in keys.by_kid:
        candidates = [keys.by_kid[header["kid"]]]
    else:
        candidates = [*keys.pems, *keys.by_kid.values()]
    failure = "no key of this app verifies the signature"
    for key in candidates:
        try:
            claims = _decode(token, key, algorithm, config, now)
        except jwt.InvalidSignatureError:
            continue
        except (jwt.InvalidKeyError, jwt.exceptions.InvalidAlgorithmError):
            continue
        except jwt.ExpiredSignatureError:
            raise invalid("token expired") from None
        except jwt.PyJWTError as exc:
            raise invalid(str(exc)) from None
        sub = claims.get("sub")
        if not isinstance(sub, str) or not sub or len(sub) > 255:
            raise invalid("token has no usable `sub`")
        return sub
    raise invalid(failure)


def _decode(token: str, key: Any, algorithm: str, config: AuthConfig, now: float) -> Any:
    # PyJWT checks exp/nbf against its own clock; leeway is not an injection point, so the
    # time checks run here against `now` and PyJWT's are off.
    options: Any = {
        "require": ["exp", "sub"],
        "verify_exp": False,
        "verify_nbf": False,
        "verify_iat": False,
        "verify_aud": config.audience is not None,
        "verify_iss": config.issuer is not None,
    }
    claims = jwt.decode(
        token,
        key,
        algorithms=[algorithm],
        audience=config.audience,
        issuer=config.issuer,
        options=options,
    )
    exp = claims.get("exp")
    if not isinstance(exp, int | float) or exp + LEEWAY_SECONDS <= now:
        raise jwt.ExpiredSignatureError("token expired")
    nbf = claims.get("nbf")
    if isinstance(nbf, int | float) and nbf - LEEWAY_SECONDS > now:
        raise jwt.ImmatureSignatureError("token not yet valid")
    return claims


def looks_like_jwt(secret: str) -> bool:
    return secret.count(".") == 2


def invalid(reason: str) -> AuthenticationError:
    return AuthenticationError(
        f"invalid end-user token: {reason}",
        code="invalid_token",
        headers={"WWW-Authenticate": 'Bearer error="invalid_token"'},
    )


MIN_SECRET_LENGTH = 32


def config_of(
    *,
    hs256_secret: str | None,
    issuer: str | None,
    audience: str | None,
    public_keys: Sequence[str],
    jwks_url: str | None,
    cors_origins: Sequence[str],
) -> AuthConfig:
    """The checked settings (the JWKS URL's host is checked by the caller, which can resolve).

    Raises: InvalidInputError when no key is given, the secret is short, a key or origin is bad.
    """
    if not (hs256_secret or public_keys or jwks_url):
        raise InvalidInputError(
            "give an HS256 secret, public keys or a JWKS URL", field="hs256_secret"
        )
    if hs256_secret is not None and len(hs256_secret) < MIN_SECRET_LENGTH:
        raise InvalidInputError(
            f"the HS256 secret must be at least {MIN_SECRET_LENGTH} characters",
            field="hs256_secret",
        )
    if len(cors_origins) > MAX_ORIGINS:
        raise InvalidInputError(f"at most {MAX_ORIGINS} origins", field="cors_origins")
    return AuthConfig(
        issuer=issuer or None,
        audience=audience or None,
        public_keys=tuple(checked_public_key(pem) for pem in public_keys),
        jwks_url=jwks_url or None,
        cors_origins=tuple(dict.fromkeys(checked_origin(o) for o in cors_origins)),
        hs256=bool(hs256_secret),
    )

"""Third-party clients against agent-auth, driven by tests/interop_python.rs.

  mcp_clients.py mcp URL ISSUER CLIENT_ID METHOD [SECRET_OR_PEM_PATH]

    The Python `mcp` SDK's client-credentials providers (METHOD: client_secret_basic,
    client_secret_post, private_key_jwt) connect to the MCP server at URL knowing nothing but
    their credentials and the issuer they belong to: everything else comes from the server's
    first 401. They list the tools and call both. Prints one JSON object: the tools, each
    call's outcome, and every HTTP exchange (method, URL, status) in order.

  mcp_clients.py authlib ISSUER CLIENT_ID METHOD SECRET_OR_PEM_PATH RESOURCE

    authlib's client_credentials (same METHODs) gets a token for RESOURCE; PyJWT's PyJWKClient
    verifies it against the issuer's JWKS (EdDSA, iss, aud). Prints the verified claims.

Only 127.0.0.1 is ever contacted. Exit status 0 unless something the caller did not expect
to fail raised.
"""

import asyncio
import json
import sys
import warnings

import httpx2
import jwt
from mcp import ClientSession
from mcp.client.auth.extensions.client_credentials import (
    ClientCredentialsOAuthProvider,
    PrivateKeyJWTOAuthProvider,
    SignedJWTParameters,
)
from mcp.client.streamable_http import streamable_http_client
from mcp.shared.exceptions import MCPDeprecationWarning

# A use of the SDK it has deprecated is worth knowing. (joserfc's warning that `EdDSA` is
# deprecated by RFC 9864 in favour of `Ed25519` stays a warning: EdDSA is what DESIGN §6 names.)
warnings.simplefilter("error", MCPDeprecationWarning)


class MemoryStorage:
    def __init__(self):
        self.tokens = None
        self.client_info = None

    async def get_tokens(self):
        return self.tokens

    async def set_tokens(self, tokens):
        self.tokens = tokens

    async def get_client_info(self):
        return self.client_info

    async def set_client_info(self, client_info):
        self.client_info = client_info


def provider(mcp_url, issuer, client_id, method, credential):
    storage = MemoryStorage()
    if method == "private_key_jwt":
        with open(credential) as f:
            pem = f.read()
        params = SignedJWTParameters(
            issuer=client_id, subject=client_id, signing_key=pem, signing_algorithm="EdDSA"
        )
        return PrivateKeyJWTOAuthProvider(
            server_url=mcp_url,
            storage=storage,
            client_id=client_id,
            assertion_provider=params.create_assertion_provider(),
            issuer=issuer,
        )
    return ClientCredentialsOAuthProvider(
        server_url=mcp_url,
        storage=storage,
        client_id=client_id,
        client_secret=credential,
        token_endpoint_auth_method=method,
        issuer=issuer,
    )


def describe(error):
    """The error and, for a group (anyio task groups), every error in it."""
    if isinstance(error, BaseExceptionGroup):
        return "; ".join(describe(inner) for inner in error.exceptions)
    return f"{type(error).__name__}: {error}"


def tool_text(result):
    return json.loads(result.content[0].text)


async def run_mcp(mcp_url, issuer, client_id, method, credential):
    exchanges = []

    async def record(response):
        exchanges.append(
            {"method": response.request.method, "url": str(response.request.url), "status": response.status_code}
        )

    auth = provider(mcp_url, issuer, client_id, method, credential)
    out = {"exchanges": exchanges, "calls": {}}
    try:
        async with httpx2.AsyncClient(auth=auth, event_hooks={"response": [record]}, timeout=30) as http:
            async with streamable_http_client(mcp_url, http_client=http) as streams:
                read, write = streams[0], streams[1]
                async with ClientSession(read, write) as session:
                    await session.initialize()
                    tools = await session.list_tools()
                    out["tools"] = sorted(tool.name for tool in tools.tools)
                    for name, arguments in [("list_tickets", {}), ("triage_ticket", {"id": "7"})]:
                        result = await session.call_tool(name, arguments)
                        if getattr(result, "is_error", None) or getattr(result, "isError", None):
                            out["calls"][name] = {"error": result.content[0].text}
                        else:
                            out["calls"][name] = {"ok": tool_text(result)}
    except BaseException as error:  # an agent refused a tool (and its step-up) ends its session
        out["error"] = describe(error)
    print(json.dumps(out))


def run_authlib(issuer, client_id, method, credential, resource):
    from authlib.integrations.requests_client import OAuth2Session
    from authlib.oauth2.rfc7523 import PrivateKeyJWT
    from joserfc.jwk import OKPKey

    metadata = httpx2.get(f"{issuer}/.well-known/oauth-authorization-server").json()
    token_endpoint = metadata["token_endpoint"]
    if method == "private_key_jwt":
        with open(credential) as f:
            pem = f.read()
        client = OAuth2Session(
            client_id=client_id,
            # authlib reads a PEM as RSA: an Ed25519 key is handed over as a key object.
            client_secret=OKPKey.import_key(pem),
            token_endpoint_auth_method=PrivateKeyJWT(token_endpoint, alg="EdDSA"),
        )
    else:
        client = OAuth2Session(client_id=client_id, client_secret=credential, token_endpoint_auth_method=method)
    client.trust_env = False  # loopback only, whatever the proxy settings
    with client:
        token = client.fetch_token(
            token_endpoint, grant_type="client_credentials", scope="tickets:read", resource=resource
        )
    signing_key = jwt.PyJWKClient(metadata["jwks_uri"]).get_signing_key_from_jwt(token["access_token"])
    claims = jwt.decode(
        token["access_token"],
        signing_key.key,
        algorithms=["EdDSA"],
        audience=resource,
        issuer=issuer,
        options={"require": ["exp", "iat", "iss", "sub", "aud", "jti"]},
    )
    print(json.dumps({"token_type": token["token_type"], "expires_in": token["expires_in"], "claims": claims}))


def main(argv):
    if argv[1] == "mcp":
        mcp_url, issuer, client_id, method, credential = argv[2:7]
        asyncio.run(run_mcp(mcp_url, issuer, client_id, method, credential))
    elif argv[1] == "authlib":
        issuer, client_id, method, credential, resource = argv[2:7]
        run_authlib(issuer, client_id, method, credential, resource)
    else:
        raise SystemExit(f"unknown mode {argv[1]!r}")


if __name__ == "__main__":
    main(sys.argv)

// panva/jose against agent-auth, driven by tests/interop_node.rs. Only 127.0.0.1 is contacted.
//
//   node jose_interop.mjs verify ISSUER AUDIENCE TOKEN
//     The seed's verifyAgentToken: the issuer's JWKS (createRemoteJWKSet), EdDSA only, `iss`,
//     `aud`, `typ: at+jwt`, and an agent (`dat.type == "agent"` and `sub` starting `agt_`).
//     Prints {"ok": {payload, header}} or {"error": code}.
//
//   node jose_interop.mjs sign ALG ISSUER AUDIENCE SUBJECT SCOPE
//     A fresh key pair (EdDSA/Ed25519 or ES256), its public JWK and an agent token jose signs
//     with it, for our layer to verify. Prints {"jwk": …, "token": …}.
import * as jose from "jose";

async function verifyAgentToken(token, issuer, audience) {
  const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/jwks.json`));
  const { payload, protectedHeader } = await jose.jwtVerify(token, jwks, {
    issuer,
    audience,
    algorithms: ["EdDSA"],
    typ: "at+jwt",
    requiredClaims: ["exp", "iat", "sub", "jti"],
  });
  if (payload.dat?.type !== "agent" || !String(payload.sub).startsWith("agt_")) {
    throw Object.assign(new Error("not an agent"), { code: "NOT_AN_AGENT" });
  }
  return { payload, header: protectedHeader };
}

async function sign(alg, issuer, audience, subject, scope) {
  const { publicKey, privateKey } = await jose.generateKeyPair(alg, {
    extractable: true,
    ...(alg === "EdDSA" ? { crv: "Ed25519" } : {}),
  });
  const jwk = { ...(await jose.exportJWK(publicKey)), kid: `jose-${alg}`, alg, use: "sig" };
  const token = await new jose.SignJWT({ scope, client_id: subject, dat: { type: "agent" } })
    .setProtectedHeader({ alg, kid: jwk.kid, typ: "at+jwt" })
    .setIssuer(issuer)
    .setAudience(audience)
    .setSubject(subject)
    .setIssuedAt()
    .setExpirationTime("5m")
    .setJti(crypto.randomUUID())
    .sign(privateKey);
  return { jwk, token };
}

const [mode, ...args] = process.argv.slice(2);
if (mode === "verify") {
  const [issuer, audience, token] = args;
  try {
    console.log(JSON.stringify({ ok: await verifyAgentToken(token, issuer, audience) }));
  } catch (error) {
    console.log(JSON.stringify({ error: error.code ?? String(error) }));
  }
} else if (mode === "sign") {
  console.log(JSON.stringify(await sign(...args)));
} else {
  console.error(`unknown mode ${mode}`);
  process.exit(2);
}

// HS256 token check shared by both Node references (the benchmark's tokens are HS256 with `sub`
// and `exp`).
const crypto = require("node:crypto");

function verify(token, secret) {
  const [header, payload, signature] = String(token).split(".");
  if (!signature) return null;
  const expected = crypto.createHmac("sha256", secret).update(`${header}.${payload}`).digest("base64url");
  if (expected !== signature) return null;
  const claims = JSON.parse(Buffer.from(payload, "base64url"));
  return claims.exp > Date.now() / 1000 ? claims : null;
}

module.exports = { verify };

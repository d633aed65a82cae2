// A tiny backend using Latch: client credentials, password sign-in, access
// token verification with jose, refresh, logout. Node 18+ (global fetch) and
// jose (npm install jose):
//
//   ISSUER=http://127.0.0.1:8080 CLIENT_ID=… CLIENT_SECRET=… \
//   DEMO_USERNAME=alice DEMO_PASSWORD='correct horse battery staple' node backend.js
'use strict';
const jose = require('jose');

const issuer = process.env.ISSUER.replace(/\/+$/, '');

async function call(path, { token, json, form, basic, want }) {
  const headers = {};
  let body;
  if (token) headers.Authorization = `Bearer ${token}`;
  if (basic) headers.Authorization = 'Basic ' + Buffer.from(basic.map(encodeURIComponent).join(':')).toString('base64');
  if (json) { headers['Content-Type'] = 'application/json'; body = JSON.stringify(json); }
  if (form) { headers['Content-Type'] = 'application/x-www-form-urlencoded'; body = new URLSearchParams(form).toString(); }
  const res = await fetch(issuer + path, { method: 'POST', headers, body });
  const text = await res.text();
  if (res.status !== want) throw new Error(`POST ${path}: ${res.status} ${text}`);
  return text ? JSON.parse(text) : null;
}

// Verifies a user access token: signature against the JWKS, issuer,
// audience (the issuer, as no resource was named), expiry and typ at+jwt.
async function verify(accessToken) {
  const jwks = jose.createRemoteJWKSet(new URL(`${issuer}/oidc/jwks`));
  const { payload } = await jose.jwtVerify(accessToken, jwks, {
    issuer, audience: issuer, typ: 'at+jwt', algorithms: ['ES256', 'RS256'],
  });
  // payload.sub is the user id, payload.scope the scopes
  return payload;
}

async function main() {
  // 1. Client credentials: the backend's own token for Latch's API.
  const ct = await call('/oidc/token', {
    form: { grant_type: 'client_credentials' },
    basic: [process.env.CLIENT_ID, process.env.CLIENT_SECRET], want: 200,
  });
  const token = ct.access_token;
  console.log('client token: ok');

  // 2. Authenticate the user with a password.
  const signIn = await call('/v1/auth/password/authenticate', {
    token, json: { username: process.env.DEMO_USERNAME, password: process.env.DEMO_PASSWORD }, want: 200,
  });
  console.log('authenticated: session', signIn.session_id);

  // 3. Verify the user's access token, as a resource server would.
  const claims = await verify(signIn.access_token);
  console.log(`verified: sub=${claims.sub}`);

  // 4. Refresh: the refresh token rotates, keep the new one.
  const refreshed = await call('/v1/auth/token/refresh', { token, json: { refresh_token: signIn.refresh_token }, want: 200 });
  await verify(refreshed.access_token);
  console.log('refreshed: ok');

  // 5. Log out: the session and its refresh tokens end.
  await call('/v1/auth/session/logout', { token, json: { session_id: signIn.session_id }, want: 204 });
  await call('/v1/auth/token/refresh', { token, json: { refresh_token: refreshed.refresh_token }, want: 400 });
  console.log('logged out: ok');
}

main().catch((err) => {
  console.error('example:', err.message);
  process.exit(1);
});

// A real OpenID Connect provider (the `oidc-provider` package) for Warden's sign-in tests.
//
// Discovery, JWKS and tokens are the package's own: tokens are signed with the keys given in
// WARDEN_IDP_KEYS (a JWKS file; rotating keys = restarting with another file). People are
// whatever the test says they are: `POST /test/accounts/{sub}` sets their claims, and the
// grant `urn:warden:test:id-token` issues an ID token for one of them to a registered client,
// signed like any other ID token of this provider (the test stands in for the browser login).
import { readFileSync } from 'node:fs';
import http from 'node:http';

import Provider from 'oidc-provider';

const port = Number(process.env.WARDEN_IDP_PORT);
const issuer = process.env.WARDEN_IDP_ISSUER || `http://127.0.0.1:${port}`;
const keys = JSON.parse(readFileSync(process.env.WARDEN_IDP_KEYS, 'utf8'));
const clients = JSON.parse(process.env.WARDEN_IDP_CLIENTS || '["warden"]');
const GRANT = 'urn:warden:test:id-token';

const accounts = new Map();

const provider = new Provider(issuer, {
  jwks: keys,
  clients: clients.map((id) => ({
    client_id: id,
    client_secret: `${id}-secret`,
    grant_types: [GRANT],
    response_types: [],
    redirect_uris: [],
    id_token_signed_response_alg: keys.keys[0].alg || 'RS256',
  })),
  claims: {
    openid: ['sub'],
    email: ['email', 'email_verified'],
    profile: ['name'],
    groups: ['groups'],
  },
  scopes: ['openid', 'email', 'profile', 'groups'],
  features: { devInteractions: { enabled: false } },
  ttl: { IdToken: 300 },
  async findAccount(ctx, sub) {
    const claims = accounts.get(sub);
    if (!claims) return undefined;
    return { accountId: sub, async claims() { return { sub, ...claims }; } };
  },
});

provider.registerGrantType(
  GRANT,
  async (ctx) => {
    const { sub, expires_in: expiresIn } = ctx.oidc.params;
    const claims = accounts.get(sub);
    if (!claims) {
      ctx.status = 400;
      ctx.body = { error: 'invalid_grant', error_description: `unknown account ${sub}` };
      return;
    }
    const token = new provider.IdToken({ sub, ...claims }, { ctx });
    token.scope = 'openid email profile groups';
    const now = Math.floor(Date.now() / 1000);
    const lifetime = expiresIn === undefined ? undefined : Number(expiresIn);
    ctx.body = {
      id_token: await token.issue({
        use: 'idtoken',
        expiresAt: lifetime === undefined ? null : now + lifetime,
      }),
      token_type: 'id_token',
    };
  },
  ['sub', 'expires_in'],
);

provider.on('server_error', (ctx, err) => { process.stderr.write(`${err.stack}\n`); });

const callback = provider.callback();

http
  .createServer((req, res) => {
    const match = req.url.match(/^\/test\/accounts\/([^/?]+)$/);
    if (match && req.method === 'POST') {
      let body = '';
      req.on('data', (chunk) => { body += chunk; });
      req.on('end', () => {
        accounts.set(decodeURIComponent(match[1]), JSON.parse(body));
        res.writeHead(204).end();
      });
      return;
    }
    callback(req, res);
  })
  .listen(port, '127.0.0.1', () => {
    process.stdout.write(`ready ${issuer}\n`);
  });

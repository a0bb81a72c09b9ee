// A real OpenID Connect provider for hearthd's single sign-on tests: panva's `oidc-provider`
// (OpenID Certified), on 127.0.0.1 at a free port, with the authorization code flow and PKCE.
//
// What a provider leaves to its deployer is set here: its login screen (instead of a form, each
// login is answered as the account the test chose with POST /_test/next-login, or refused), and
// where clients and accounts come from (the test registers them with POST /_test/client and
// POST /_test/account, once it knows hearthd's address). Everything else — discovery, the
// authorization and token endpoints, signed ID tokens, userinfo, PKCE and nonce checks — is the
// library's own.
//
// With OIDC_TLS_CERT and OIDC_TLS_KEY (PEM files) it serves HTTPS at https://localhost:PORT, as a
// provider with a certificate of an organisation's own CA would.
//
// Back-channel logout is on: a client registered with a backchannel_logout_uri is sent the
// library's own signed logout token when a session of its account ends here.
//
// Prints `listening ISSUER` on stdout when ready. Run from web/tests (its node_modules).
import { readFileSync } from "node:fs";
import http from "node:http";
import https from "node:https";
import Provider from "oidc-provider";

const stores = new Map();
class MemoryAdapter {
  constructor(name) {
    if (!stores.has(name)) stores.set(name, new Map());
    this.items = stores.get(name);
  }
  async upsert(id, payload) { this.items.set(id, payload); }
  async find(id) { return this.items.get(id); }
  async findByUid(uid) { return [...this.items.values()].find((v) => v.uid === uid); }
  async findByUserCode(code) { return [...this.items.values()].find((v) => v.userCode === code); }
  async consume(id) {
    const v = this.items.get(id);
    if (v) v.consumed = Math.floor(Date.now() / 1000);
  }
  async destroy(id) { this.items.delete(id); }
  async revokeByGrantId(grantId) {
    for (const [k, v] of this.items) if (v.grantId === grantId) this.items.delete(k);
  }
}

const accounts = new Map(); // sub -> claims
let nextLogin = null; // the sub the next login is answered as; null refuses it

const tls = process.env.OIDC_TLS_CERT
  ? { cert: readFileSync(process.env.OIDC_TLS_CERT), key: readFileSync(process.env.OIDC_TLS_KEY) }
  : null;
const server = tls ? https.createServer(tls) : http.createServer();
await new Promise((ok) => server.listen(0, "127.0.0.1", ok));
const issuer = tls ? `https://localhost:${server.address().port}` : `http://127.0.0.1:${server.address().port}`;

const provider = new Provider(issuer, {
  adapter: MemoryAdapter,
  clients: [],
  findAccount: async (_ctx, sub) =>
    accounts.has(sub) ? { accountId: sub, claims: async () => ({ sub, ...accounts.get(sub) }) } : undefined,
  claims: {
    openid: ["sub"],
    email: ["email", "email_verified"],
    profile: ["preferred_username", "name"],
  },
  // Back-channel logout: ending a session here (its /session/end page, or a login as someone
  // else) posts a signed logout token to each client's backchannel_logout_uri.
  features: {
    devInteractions: { enabled: false },
    backchannelLogout: { enabled: true },
    // The logout page is the deployer's to style: the library's own loads a web font from the
    // internet, which the tests' browser cannot reach.
    rpInitiatedLogout: {
      enabled: true,
      logoutSource: async (ctx, form) => {
        ctx.body = `<!DOCTYPE html><html><head><meta charset="utf-8"><link rel="icon" href="data:,"><title>Sign out</title></head>
          <body><h1>Do you want to sign out?</h1>${form}
          <button autofocus type="submit" form="op.logoutForm" value="yes" name="logout">Yes, sign me out</button>
          <button type="submit" form="op.logoutForm">No, stay signed in</button></body></html>`;
      },
    },
  },
  interactions: { url: (_ctx, interaction) => `/interaction/${interaction.uid}` },
  pkce: { required: () => true },
  // The library refuses to post to loopback addresses (SSRF protection for providers on the
  // internet); hearthd under test is on 127.0.0.1, so its logout requests go out without it.
  fetch: (url, options) => {
    delete options.dispatcher;
    return fetch(url, options);
  },
  cookies: { keys: ["hearth-oidc-peer-test-key"] },
});
provider.on("server_error", (_ctx, err) => console.error("oidc-peer server_error", err));
provider.on("backchannel.error", (_ctx, err, client) =>
  console.error("oidc-peer backchannel.error", client.clientId, err));

async function body(req) {
  let s = "";
  for await (const chunk of req) s += chunk;
  return s ? JSON.parse(s) : {};
}

async function interaction(req, res) {
  const details = await provider.interactionDetails(req, res);
  const { prompt, params, session } = details;
  if (prompt.name === "login") {
    const result = nextLogin === null
      ? { error: "access_denied", error_description: "the test refused this login" }
      : { login: { accountId: nextLogin } };
    return provider.interactionFinished(req, res, result, { mergeWithLastSubmission: false });
  }
  const grant = details.grantId
    ? await provider.Grant.find(details.grantId)
    : new provider.Grant({ accountId: session.accountId, clientId: params.client_id });
  grant.addOIDCScope(params.scope);
  const grantId = await grant.save();
  return provider.interactionFinished(req, res, { consent: { grantId } }, { mergeWithLastSubmission: true });
}

const handle = provider.callback();
server.on("request", async (req, res) => {
  try {
    if (req.method === "POST" && req.url === "/_test/client") {
      const c = await body(req);
      new MemoryAdapter("Client").items.set(c.client_id, c);
    } else if (req.method === "POST" && req.url === "/_test/account") {
      const a = await body(req);
      accounts.set(a.sub, a.claims || {});
    } else if (req.method === "POST" && req.url === "/_test/next-login") {
      nextLogin = (await body(req)).sub ?? null;
    } else if (req.method === "GET" && req.url.startsWith("/interaction/")) {
      return await interaction(req, res);
    } else {
      return handle(req, res);
    }
    res.writeHead(204).end();
  } catch (e) {
    console.error("oidc-peer", e);
    res.writeHead(500).end(String(e));
  }
});

console.log(`listening ${issuer}`);

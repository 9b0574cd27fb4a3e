// Drives a live gateway through a TypeScript client: types generated from
// its OpenAPI document by openapi-typescript (api.d.ts, beside this file
// when tests/e2e/clients.rs compiles it), requests made by openapi-fetch.
// Compiled with `tsc --strict`, so a document the types do not fit fails
// before it runs. Usage: node client.mjs <API base URL> <token>; prints
// one JSON object as the Python client does.
import createClient from "openapi-fetch";
import type { paths } from "./api.js";

const [base, token] = process.argv.slice(2);
const client = createClient<paths>({
  baseUrl: base,
  headers: { Authorization: `Bearer ${token}` },
});

const created = await client.POST("/sessions", {
  body: { label: "typescript client" },
});
if (created.response.status !== 201 || !created.data) {
  throw new Error(`create: ${created.response.status} ${JSON.stringify(created.error)}`);
}
const session = created.data;

// `scan_qr_code` comes on its own; until then the QR code is a 409 in the
// error envelope. Bounded by a deadline.
const deadline = Date.now() + 60_000;
let code: string | undefined;
while (code === undefined) {
  const answer = await client.GET("/sessions/{id}/qr", {
    params: { path: { id: session.id }, query: { format: "json" } },
  });
  // 200 is JSON here (format=json); the document also lists the PNG and
  // SVG forms, so the type is their union until narrowed.
  const data = answer.data;
  if (answer.response.status === 200 && typeof data === "object" && data !== null && "code" in data) {
    code = data.code;
  } else if (answer.response.status === 409 && answer.error) {
    if (Date.now() > deadline) {
      throw new Error(`no QR code within 60 s: ${answer.error.error.code}`);
    }
    await new Promise((resolve) => setTimeout(resolve, 200));
  } else {
    throw new Error(`qr: ${answer.response.status} ${JSON.stringify(answer.error)}`);
  }
}

const listed = await client.GET("/sessions", { params: { query: { limit: 100 } } });
if (listed.response.status !== 200 || !listed.data) {
  throw new Error(`list: ${listed.response.status}`);
}
console.log(
  JSON.stringify({
    id: session.id,
    status: session.status,
    qr: code,
    listed: listed.data.data.map((s) => s.id),
  }),
);

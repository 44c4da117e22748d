// An agent's loop, end to end, from Node.js with node-postgres.
//
//   cd examples && npm ci
//   PGHOST=... PGPORT=... PGUSER=... PGDATABASE=... node agent_loop.js
//
// Creates the collection "example_kb" (dropped first if it exists) and the learner
// "example_styles" (reset first). Connection settings come from the usual PG* variables.
"use strict";
const { Client } = require("pg");

const DOCS = [
  ["cats", "pets", "Cats purr when they are content and sleep most of the day.", [0.9, 0.1, 0.0, 0.0]],
  ["dogs", "pets", "Dogs bark at strangers and love long walks.", [0.1, 0.9, 0.0, 0.0]],
  ["tea", "food", "Green tea is brewed below boiling point.", [0.0, 0.0, 0.9, 0.1]],
];

async function main() {
  const db = new Client();
  await db.connect();
  try {
    await db.query("SET client_min_messages = warning");
    await db.query("CREATE EXTENSION IF NOT EXISTS qortex CASCADE");
    await db.query(
      "SELECT qortex_drop_collection(name, drop_data => true) " +
        "FROM qortex_collections() WHERE name = 'example_kb'");
    await db.query("SELECT qortex_reset('example_styles')");

    // 1. A collection for 4-dimensional embeddings (real ones have 384 to 1536).
    await db.query("SELECT qortex_create_collection('example_kb', 4)");

    // 2. Documents with their chunks and embeddings, each in one statement.
    for (const [externalId, topic, content, embedding] of DOCS) {
      const { rows } = await db.query("SELECT qortex_ingest('example_kb', $1, $2) AS id", [
        JSON.stringify({ external_id: externalId, metadata: { topic } }),
        JSON.stringify([{ content, embedding }]),
      ]);
      console.log(`ingested ${externalId} as document ${rows[0].id}`);
    }

    // 3. Search: the query's embedding and its text, fused in one call.
    const query = ["[0.8, 0.2, 0.0, 0.0]", "why do cats purr"];
    const { rows } = await db.query(
      "SELECT id, content, score, vector_rank, text_rank " +
        "FROM hybrid_search('example_kb', $1::vector, $2, 2)", query);
    for (const r of rows) {
      console.log(`result ${r.id}: ${JSON.stringify(r.content)} score=${r.score.toFixed(4)} ` +
        `vector_rank=${r.vector_rank} text_rank=${r.text_rank}`);
    }

    // 4. Feedback: the user kept the first result. Later searches rank it higher.
    const top = rows[0].id;
    await db.query("SELECT * FROM interoception_update($1, query_id => 'example-q1')",
      [JSON.stringify({ [top]: "accepted" })]);
    const after = await db.query(
      "SELECT factor FROM hybrid_search('example_kb', $1::vector, $2, 1)", query);
    console.log(`factor of ${top} after feedback: ${after.rows[0].factor.toFixed(2)}`);

    // 5. Choose how to answer with a bandit, then record how it went.
    const picked = await db.query(
      "SELECT arm_id FROM qortex_select_arms('example_styles', ARRAY['terse', 'detailed'], seed => 7)");
    const style = picked.rows[0].arm_id;
    console.log(`chosen style: ${style}`);
    const obs = await db.query(
      "SELECT pulls, mean FROM qortex_observe('example_styles', $1, 'accepted')", [style]);
    console.log(`observed ${style}: pulls=${obs.rows[0].pulls} mean=${obs.rows[0].mean.toFixed(3)}`);
  } finally {
    await db.end();
  }
}

main().catch((e) => {
  console.error(e);
  process.exit(1);
});

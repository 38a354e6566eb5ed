/**
 * The queue's hot statements cost the same at any backlog (docs/scaling.md,
 * "Cost at any backlog"): on a table with a large backlog (half of it due,
 * half in backoff, two priorities, three routes, one of them paused, leases
 * held, finished operations), the plans of leasing, handing back expired
 * leases, retention and counts are range reads of their indexes: no scan of
 * the table, no sort or temporary B-tree over the backlog, no rows read and
 * thrown away by a filter. SQLite with EXPLAIN QUERY PLAN, PostgreSQL with
 * EXPLAIN ANALYZE on the real server.
 */
import assert from 'node:assert/strict';
import { rmSync } from 'node:fs';
import { join } from 'node:path';
import { DatabaseSync } from 'node:sqlite';
import { after, describe, it } from 'node:test';
import pg from 'pg';
import type { WebhookDeliveryQuery } from '../../src/store/port.ts';
import {
  COUNTS,
  FENCED,
  HAND_BACK_BATCH,
  LEASE,
  NEXT_DUE,
  OLDEST_DUE_BY_ROUTE,
  PostgresStore,
  PURGE,
} from '../../src/store/postgres/postgres-store.ts';
import { BRING_FORWARD } from '../../src/store/postgres/route-drain.ts';
import { listWebhookStatement as pgListWebhooks } from '../../src/store/postgres/webhook-outbox.ts';
import { BACKLOG_SQL, SqliteStore } from '../../src/store/sqlite/sqlite-store.ts';
import { listWebhookStatement as sqliteListWebhooks } from '../../src/store/sqlite/webhook-outbox.ts';
import { tempDir } from '../support/harness.ts';
import { ManualClock } from '../support/manual-clock.ts';
import { freshSchema, skipWithoutPostgres, TEST_POSTGRES_URL } from '../support/postgres.ts';

const skip = await skipWithoutPostgres('the PostgreSQL plan tests');
const ROWS = 50_000;
const LIMIT = 8;
/** (priority, route) groups in the table: a lease reads at most LIMIT rows from each. */
const GROUPS = 6;
const NOW = new ManualClock().now();
/**
 * The indexes on `operations` besides its primary key (migration 025): every lease and finish of a
 * waiting operation updates each one it is in, more so once the backlog outgrows the page cache.
 */
const OPERATIONS_INDEXES = [
  'operations_by_route',
  'operations_by_status',
  'operations_dead_by_route',
  'operations_dead_lettered',
  'operations_dead_listed',
  'operations_due',
  'operations_finished',
  'operations_key_queue',
  'operations_lease_expiry',
  'operations_listed',
];

/**
 * The backlog, as one INSERT … SELECT over the numbers 1…ROWS (`n`): every
 * 10th finished long ago, every 10th leased (half of those expired), the others
 * waiting, half of them due. Priorities 0 and 1; routes default, orders, paused.
 */
const backlogRows = (
  n: string,
) => `SELECT 'op-' || ${n}, CASE ${n} % 3 WHEN 0 THEN 'default' WHEN 1 THEN 'orders' ELSE 'paused' END,
    'POST', '/p', '', '[]', X'00',
    CASE WHEN ${n} % 10 = 0 THEN 'Succeeded' WHEN ${n} % 10 = 1 THEN 'Running' ELSE 'NotStarted' END,
    false, CASE WHEN ${n} % 2 = 0 THEN ${NOW} - ${n} ELSE ${NOW} + ${n} END,
    CASE WHEN ${n} % 10 = 1 THEN 'w' END,
    CASE WHEN ${n} % 20 = 1 THEN ${NOW} - 1000 WHEN ${n} % 10 = 1 THEN ${NOW} + 60000 END,
    ${n} % 2, ${NOW} - ${n}, CASE WHEN ${n} % 10 = 0 THEN ${NOW} - 86400000 ELSE ${NOW} END`;
const COLUMNS = `id, route, method, path, query, request_headers, request_body, status, outcome_unknown,
  next_attempt_at, lease_owner, lease_expires_at, priority, created_at, updated_at`;

/**
 * The webhook outbox of the backlog's finished operations and more: two deliveries of each of the
 * ROWS operations ("callback" and "audit"), a quarter in each state, created 1 ms apart.
 */
const deliveryRows = (n: string) => `SELECT 'op-' || ${n}, 3, e.endpoint, 'https://h.example/' || e.endpoint,
    CASE ${n} % 4 WHEN 0 THEN 'pending' WHEN 1 THEN 'delivered' WHEN 2 THEN 'failed' ELSE 'disabled' END,
    1, ${NOW} + ${n}, 'The receiver answered 500.', ${NOW} - ${n}, ${NOW} - ${n}`;
const DELIVERY_COLUMNS = `operation_id, seq, endpoint, url, state, attempts, next_attempt_at, last_error,
  created_at, updated_at`;
/** The admin API's pages (GET /api/webhooks/deliveries): by state, to one endpoint, after a cursor. */
const WEBHOOK_PAGES: Array<[string, WebhookDeliveryQuery]> = [
  ['failed', { state: 'failed', limit: LIMIT }],
  ['failed to audit', { state: 'failed', endpoint: 'audit', limit: LIMIT }],
  [
    'failed after a cursor',
    {
      state: 'failed',
      limit: LIMIT,
      after: { createdAt: NOW - 20_000, operationId: 'op-20000', seq: 3, endpoint: 'audit' },
    },
  ],
  [
    'pending to callback after a cursor',
    {
      state: 'pending',
      endpoint: 'callback',
      limit: LIMIT,
      after: { createdAt: NOW - 20_000, operationId: 'op-20000', seq: 3, endpoint: 'callback' },
    },
  ],
];

describe('backlog-independent plans: SQLite', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('leasing, handing back, retention and counts read index ranges, never the backlog', async () => {
    const path = join(dir, 'plans.db');
    await new SqliteStore({ path }).close(); // migrates
    const db = new DatabaseSync(path);
    try {
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
        INSERT INTO operations (${COLUMNS}) ${backlogRows('i').replace("X'00'", "X'00'")} FROM n`);
      db.exec('ANALYZE');
      const plan = (sql: string) =>
        (db.prepare(`EXPLAIN QUERY PLAN ${sql}`).all() as Array<{ detail: string }>).map((r) => r.detail);
      const expectations: Record<keyof typeof BACKLOG_SQL, RegExp> = {
        firstGroup: /^SCAN operations USING (COVERING )?INDEX operations_due$/,
        // Both seeks bounded: a row-value range `(priority,route)<(?,?)` seeks on priority alone and walks
        // the groups above it entry by entry (8.5 ms per call at 200,000 due, 0.07 ms at 2,000).
        nextGroup: /^SEARCH operations USING (COVERING )?INDEX operations_due \(priority=\? AND route<\?\)$/,
        dueInGroup:
          /^SEARCH operations USING INDEX operations_due \(priority=\? AND route=\? AND next_attempt_at<\?\)$/,
        handBackExpired: /^SEARCH operations USING INDEX operations_lease_expiry \(lease_expires_at<\?\)$/,
        firstDueInGroup:
          /^SEARCH operations USING (COVERING )?INDEX operations_due \(priority=\? AND route=\?\)$/,
        nextLeaseExpiry: /^SEARCH operations USING (COVERING )?INDEX operations_lease_expiry$/,
        expiredLeasesByRoute:
          /^SEARCH operations USING INDEX operations_lease_expiry \(lease_expires_at<\?\)$/,
        purge: /^SEARCH operations USING INDEX operations_finished \(updated_at<\?\)$/,
        counts: /operation_counts/,
      };
      // Every index on operations is paid for by each write of a waiting operation (its lease, its
      // finish), and more so as the backlog outgrows the page cache: only these (migration 025).
      const indexes = (
        db
          .prepare("SELECT name FROM sqlite_master WHERE type = 'index' AND tbl_name = 'operations'")
          .all() as Array<{
          name: string;
        }>
      )
        .map((row) => row.name)
        .sort();
      assert.deepEqual(indexes, [...OPERATIONS_INDEXES, 'sqlite_autoindex_operations_1'].sort());
      for (const [name, sql] of Object.entries(BACKLOG_SQL)) {
        const details = plan(sql);
        const expected = expectations[name as keyof typeof BACKLOG_SQL];
        assert.ok(
          details.some((d) => expected.test(d)),
          `${name}: ${JSON.stringify(details)}`,
        );
        if (name === 'nextGroup')
          assert.ok(
            details.some((d) => /INDEX operations_due \(priority<\?\)$/.test(d)),
            `nextGroup's lower priorities: ${JSON.stringify(details)}`,
          );
        for (const detail of details) {
          assert.doesNotMatch(detail, /^SCAN operations$/, `${name} scans the table`);
          assert.doesNotMatch(
            detail,
            /\(priority,route\)/,
            `${name} seeks a row value on its first column only`,
          );
          // Counts group a few counter rows; expired leases by route group only the leases run out
          // (at most the leases held), never the backlog.
          if (name !== 'counts' && name !== 'expiredLeasesByRoute')
            assert.doesNotMatch(detail, /TEMP B-TREE/, `${name} sorts: ${detail}`);
        }
      }
    } finally {
      db.close();
    }
  });
});

describe('backlog-independent plans: SQLite webhook deliveries', () => {
  const dir = tempDir();
  after(() => rmSync(dir, { recursive: true, force: true }));

  it('a page of deliveries by state reads an index range, never the outbox', async () => {
    const path = join(dir, 'webhooks.db');
    await new SqliteStore({ path }).close(); // migrates
    const db = new DatabaseSync(path);
    try {
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
        INSERT INTO operations (${COLUMNS}) ${backlogRows('i')} FROM n`);
      db.exec(`WITH RECURSIVE n(i) AS (SELECT 1 UNION ALL SELECT i + 1 FROM n WHERE i < ${ROWS})
        INSERT INTO webhook_deliveries (${DELIVERY_COLUMNS}) ${deliveryRows('i')}
        FROM n, (SELECT 'callback' AS endpoint UNION ALL SELECT 'audit') AS e`);
      db.exec('ANALYZE');
      for (const [what, query] of WEBHOOK_PAGES) {
        const { text, params } = sqliteListWebhooks(query);
        const details = (
          db.prepare(`EXPLAIN QUERY PLAN ${text}`).all(params) as Array<{ detail: string }>
        ).map((r) => r.detail);
        const index =
          query.endpoint === undefined
            ? 'by_state \\(state=\\?'
            : 'by_endpoint \\(endpoint=\\? AND state=\\?';
        assert.ok(
          details.some((d) =>
            new RegExp(`^SEARCH webhook_deliveries USING INDEX webhook_deliveries_${index}`).test(d),
          ),
          `${what}: ${JSON.stringify(details)}`,
        );
        for (const detail of details) {
          assert.doesNotMatch(detail, /^SCAN /, `${what} scans: ${detail}`);
          assert.doesNotMatch(detail, /TEMP B-TREE/, `${what} sorts: ${detail}`);
        }
        const page = db.prepare(text).all(params);
        assert.equal(page.length, LIMIT, `${what}: a full page`);
      }
    } finally {
      db.close();
    }
  });
});

describe('backlog-independent plans: PostgreSQL', { skip }, () => {
  interface PlanNode {
    'Node Type': string;
    'Relation Name'?: string;
    'Index Name'?: string;
    'Actual Rows': number;
    'Actual Loops': number;
    'Rows Removed by Filter'?: number;
    'Shared Hit Blocks': number;
    'Shared Read Blocks': number;
    Plans?: PlanNode[];
  }
  /** A fresh schema, migrated, and a client of its own (the caller ends it). */
  const migratedSchema = async (prefix: string) => {
    const db = freshSchema(prefix);
    await (await PostgresStore.open({ url: db.url })).close(); // migrates
    const client = new pg.Client({ connectionString: TEST_POSTGRES_URL });
    await client.connect();
    return { db, client };
  };
  const nodesOf = (node: PlanNode): PlanNode[] => [node, ...(node.Plans ?? []).flatMap(nodesOf)];

  it('leasing, handing back, retention and counts read index ranges, never the backlog', async () => {
    const { db, client } = await migratedSchema('spillway_plans_test');
    try {
      await db.query(`INSERT INTO ${db.schema}.operations (${COLUMNS})
        ${backlogRows('n').replace("X'00'", "'\\x00'::bytea").replace("'[]'", "'[]'::jsonb")}
        FROM generate_series(1, ${ROWS}) AS n`);
      await db.query(`ANALYZE ${db.schema}.operations`);
      await client.query(`SET search_path TO ${db.schema}`);
      // Run for real (ANALYZE), then rolled back: the plan shows the rows each node actually read.
      const explain = async (sql: string, values: unknown[]) => {
        await client.query('BEGIN');
        try {
          const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${sql}`, values);
          return nodesOf((rows[0] as { 'QUERY PLAN': Array<{ Plan: PlanNode }> })['QUERY PLAN'][0]!.Plan);
        } finally {
          await client.query('ROLLBACK');
        }
      };
      const leaseNodes = await explain(LEASE, [
        'w',
        NOW,
        10_000,
        LIMIT,
        't',
        ['paused'],
        '{}',
        HAND_BACK_BATCH,
        null,
        [],
        true,
      ]);
      const leased = leaseNodes[0]!['Actual Rows'];
      assert.equal(leased, LIMIT, 'the lease took a full batch');
      checkReads('lease', leaseNodes, ['operations_due', 'operations_lease_expiry', 'operations_pkey']);
      // A plan's row counts leave out the index entries an Index Cond turns down: the pages read
      // show them. Reading a group's due range from operations_due is a descent of the index (3
      // levels at this size) and the rows taken, with their heap pages: never the groups after it.
      for (const node of leaseNodes.filter((n) => n['Index Name'] === 'operations_due')) {
        const pages = (node['Shared Hit Blocks'] + node['Shared Read Blocks']) / node['Actual Loops'];
        assert.ok(
          pages <= 4 + 2 * LIMIT,
          `lease: ${pages} pages of operations_due read per loop (${node['Actual Loops']} loops)`,
        );
      }
      const purgeNodes = await explain(PURGE, [NOW - 3_600_000, 100]);
      checkReads('purge', purgeNodes, ['operations_finished', 'operations_pkey']);
      assert.ok(purgeNodes.some((n) => n['Index Name'] === 'operations_finished'));
      // Each write of a waiting operation updates every index it is in: only these (migration 025).
      const indexes = await db.query<{ indexname: string }>(
        'SELECT indexname FROM pg_indexes WHERE schemaname = $1 AND tablename = $2 ORDER BY indexname',
        [db.schema, 'operations'],
      );
      assert.deepEqual(
        indexes.map((row) => row.indexname).sort(),
        [...OPERATIONS_INDEXES, 'operations_pkey'].sort(),
      );
      // The earliest due time, the oldest due per route and bringing a route forward: each group's
      // first entries of operations_due, and expired leases from their index (migration 025).
      const expiredLeases = ROWS / 20;
      checkReads('nextDueAt', await explain(NEXT_DUE, []), ['operations_due', 'operations_lease_expiry']);
      checkReads(
        'oldestDueByRoute',
        await explain(OLDEST_DUE_BY_ROUTE, [NOW]),
        ['operations_due', 'operations_lease_expiry'],
        expiredLeases,
      );
      checkReads('bringForward', await explain(BRING_FORWARD, ['orders', NOW, LIMIT]), [
        'operations_due',
        'operations_pkey',
      ]);
      const countNodes = await explain(COUNTS, []);
      assert.ok(
        countNodes.every(
          (n) => n['Relation Name'] === undefined || n['Relation Name'] === 'operation_counts',
        ),
      );
    } finally {
      await client.end();
      await db.drop();
    }

    /** Every read of `operations` is through one of `indexes`, keeps what it reads, and no sort is larger than a batch per group. */
    function checkReads(what: string, nodes: PlanNode[], indexes: string[], alsoExpired = 0): void {
      for (const node of nodes) {
        const rows = node['Actual Rows'] * node['Actual Loops'];
        if (node['Relation Name'] === 'operations' && node['Node Type'] !== 'ModifyTable') {
          // A bitmap heap scan reads what its bitmap index scan (a child) found.
          const index =
            node['Node Type'] === 'Bitmap Heap Scan'
              ? node.Plans?.find((p) => p['Node Type'] === 'Bitmap Index Scan')?.['Index Name']
              : node['Index Name'];
          assert.ok(
            index !== undefined && indexes.includes(index),
            `${what} reads operations by ${node['Node Type']} ${node['Index Name'] ?? ''}: ${JSON.stringify(nodes.map((n) => [n['Node Type'], n['Index Name'], n['Actual Rows'], n['Actual Loops']]))}`,
          );
          assert.ok(
            !node['Rows Removed by Filter'],
            `${what}: ${node['Rows Removed by Filter']} rows read and dropped`,
          );
          assert.ok(
            rows <= LIMIT * GROUPS + HAND_BACK_BATCH + alsoExpired,
            `${what}: ${rows} rows read from ${node['Index Name']}`,
          );
        }
        if (node['Node Type'] === 'Sort') assert.ok(rows <= LIMIT * GROUPS, `${what} sorts ${rows} rows`);
      }
    }
  });

  it('a page of webhook deliveries by state reads an index range, never the outbox', async () => {
    const { db, client } = await migratedSchema('spillway_webhook_plans_test');
    try {
      await db.query(`INSERT INTO ${db.schema}.operations (${COLUMNS})
        ${backlogRows('n').replace("X'00'", "'\\x00'::bytea").replace("'[]'", "'[]'::jsonb")}
        FROM generate_series(1, ${ROWS}) AS n`);
      await db.query(`INSERT INTO ${db.schema}.webhook_deliveries (${DELIVERY_COLUMNS}) ${deliveryRows('n')}
        FROM generate_series(1, ${ROWS}) AS n, (VALUES ('callback'), ('audit')) AS e (endpoint)`);
      await db.query(`ANALYZE ${db.schema}.webhook_deliveries`);
      await client.query(`SET search_path TO ${db.schema}`);
      for (const [what, query] of WEBHOOK_PAGES) {
        const { text, values } = pgListWebhooks(query);
        const { rows } = await client.query(`EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) ${text}`, values);
        const nodes = nodesOf(
          (rows[0] as { 'QUERY PLAN': Array<{ Plan: PlanNode }> })['QUERY PLAN'][0]!.Plan,
        );
        const shown = JSON.stringify(nodes.map((n) => [n['Node Type'], n['Index Name'], n['Actual Rows']]));
        assert.equal(nodes[0]!['Actual Rows'], LIMIT, `${what}: a full page`);
        const expected =
          query.endpoint === undefined ? 'webhook_deliveries_by_state' : 'webhook_deliveries_by_endpoint';
        for (const node of nodes) {
          assert.notEqual(node['Node Type'], 'Sort', `${what} sorts: ${shown}`);
          if (node['Relation Name'] !== 'webhook_deliveries') continue;
          assert.equal(node['Index Name'], expected, `${what}: ${shown}`);
          assert.ok(!node['Rows Removed by Filter'], `${what}: rows read and dropped: ${shown}`);
          assert.ok(node['Actual Rows'] <= LIMIT, `${what}: ${node['Actual Rows']} rows read: ${shown}`);
          const pages = node['Shared Hit Blocks'] + node['Shared Read Blocks'];
          assert.ok(pages <= 4 + 2 * LIMIT, `${what}: ${pages} pages read: ${shown}`);
        }
      }
    } finally {
      await client.end();
      await db.drop();
    }
  });

  it("a lease holder's writes find the operation by its primary key, not among the leases finished since the last vacuum", async () => {
    const { db, client } = await migratedSchema('spillway_fenced_test');
    try {
      // A backlog as it is written, all waiting: the statistics see no Running row, as in any backlog
      // where only the leases held are Running.
      await db.query(`INSERT INTO ${db.schema}.operations (id, route, method, path, query, request_headers,
          request_body, status, next_attempt_at, created_at, updated_at)
        SELECT 'op-' || lpad(n::text, 6, '0'), 'default', 'POST', '/p', '', '[]'::jsonb, '\\x00'::bytea,
          'NotStarted', ${NOW} + n, ${NOW} + n, ${NOW} + n
        FROM generate_series(1, 20000) AS n`);
      await db.query(`ANALYZE ${db.schema}.operations`);
      await client.query(`SET search_path TO ${db.schema}`);
      // 5,000 leased and finished since, not yet vacuumed: each left an entry of its Running version in
      // operations_by_status. Then one lease held.
      await client.query(`UPDATE operations SET status = 'Running', lease_owner = 'w', lease_token = 'old'
        WHERE id <= 'op-005000'`);
      await client.query(`UPDATE operations SET status = 'Succeeded', lease_owner = NULL, lease_token = NULL
        WHERE status = 'Running'`);
      await client.query(`UPDATE operations SET status = 'Running', lease_owner = 'w', lease_token = 'held',
        lease_expires_at = ${NOW} WHERE id = 'op-005001'`);
      // Each fenced write (complete, retry, fail, release, extend) is an UPDATE … FENCED: the same
      // access path. A named statement is planned with its values 5 times, then maybe generically.
      for (const mode of ['force_custom_plan', 'force_generic_plan']) {
        await client.query('BEGIN');
        try {
          await client.query(`SET LOCAL plan_cache_mode = ${mode}`);
          const { rows } = await client.query(
            `EXPLAIN (ANALYZE, BUFFERS, FORMAT JSON) UPDATE operations SET lease_expires_at = $3 ${FENCED} RETURNING id`,
            ['op-005001', 'held', NOW + 1],
          );
          const nodes = nodesOf(
            (rows[0] as { 'QUERY PLAN': Array<{ Plan: PlanNode }> })['QUERY PLAN'][0]!.Plan,
          );
          const scan = nodes.find(
            (n) => n['Relation Name'] === 'operations' && n['Node Type'] !== 'ModifyTable',
          );
          const pages = scan ? scan['Shared Hit Blocks'] + scan['Shared Read Blocks'] : undefined;
          assert.equal(nodes[0]!['Actual Rows'], 1, `${mode}: the held lease's write changed its operation`);
          assert.equal(
            scan?.['Index Name'],
            'operations_pkey',
            `${mode}: ${scan?.['Node Type']} ${scan?.['Index Name']}, ${pages} pages`,
          );
          assert.ok(pages !== undefined && pages <= 5, `${mode}: ${pages} pages read to find one operation`);
        } finally {
          await client.query('ROLLBACK');
        }
      }
    } finally {
      await client.end();
      await db.drop();
    }
  });
});

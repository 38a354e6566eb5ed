/**
 * The dashboard end to end in headless Chromium (Debian's, driven by
 * playwright-core): a real gateway with an admin token, a route whose
 * upstream is down dead-letters an operation; the dashboard asks for the
 * token, shows the route and the dead letter, redrives it with a click once
 * the upstream is back, and shows it succeed; its page shows the attempt
 * history and events. The test writes a screenshot to a temp directory.
 */
import assert from 'node:assert/strict';
import { randomUUID } from 'node:crypto';
import { join } from 'node:path';
import { after, describe, it } from 'node:test';
import { type Browser, chromium } from 'playwright-core';
import { operationIdOf, startGateway, tempDir } from '../support/harness.ts';
import { TestUpstream } from '../support/test-upstream.ts';

const CHROMIUM = '/usr/bin/chromium';
const TOKEN = randomUUID();

describe('the dashboard in Chromium', () => {
  let browser: Browser | undefined;
  after(async () => {
    await browser?.close();
  });

  it('asks for the token, shows a dead letter, redrives it with a click, and shows it succeed', async (t) => {
    const upstream = await new TestUpstream().start();
    t.after(() => upstream.stop());
    upstream.behaviour = () => ({ kind: 'respond', status: 503, body: 'down' });
    await using gw = await startGateway({
      upstream: upstream.url,
      adminToken: TOKEN,
      routes: [{ name: 'payments', match: 'POST /payments', maxAttempts: 2, health: { minCalls: 1_000 } }],
    });
    const res = await fetch(`${gw.publicUrl}/payments`, { method: 'POST', body: '{"amount":7}' });
    const id = operationIdOf(res);
    assert.ok((await gw.settled(id)).deadLetteredAt);

    browser = await chromium.launch({
      executablePath: CHROMIUM,
      headless: true,
      args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
    });
    const page = await browser.newPage({ viewport: { width: 1400, height: 1000 } });
    const errors: string[] = [];
    page.on('pageerror', (error) => errors.push(error.message));
    await page.goto(`http://127.0.0.1:${gw.adminPort}/`);

    // The token, typed once, kept in the tab.
    await page.locator('input[name="token"]').fill(TOKEN);
    await page.locator('#token button[type="submit"]').click();
    const row = page.locator(`#dead-letters tr[data-operation-id="${id}"]`);
    await row.waitFor({ timeout: 20_000 });
    assert.match(await row.innerText(), /attempts-exhausted/);
    assert.equal(await page.evaluate(() => sessionStorage.getItem('spillway-admin-token')), TOKEN);
    const routeRow = page.locator('#routes tr[data-route="payments"]');
    assert.equal(await routeRow.locator('td.dead').innerText(), '1');
    assert.equal(await page.locator('svg.chart').count(), 3);

    upstream.behaviour = () => ({ kind: 'respond', status: 201, body: '{"paid":true}' });
    await row.locator('button.redrive').click();
    await page
      .locator(`#followed tr[data-followed-id="${id}"][data-status="Succeeded"]`)
      .waitFor({ timeout: 20_000 });
    assert.equal((await gw.store.get(id))?.status, 'Succeeded');
    await page
      .locator(`#dead-letters tr[data-operation-id="${id}"]`)
      .waitFor({ state: 'detached', timeout: 20_000 });

    // The operation's page: its attempts and events.
    await page.goto(`http://127.0.0.1:${gw.adminPort}/#/operations/${id}`);
    await page.locator('#operation[data-status="Succeeded"]').waitFor({ timeout: 20_000 });
    const attempts = await page.locator('#attempts tbody tr').allInnerTexts();
    assert.equal(attempts.length, 3);
    assert.match(attempts[2]!, /succeeded\s+201/);
    assert.match(await page.locator('#events').innerText(), /Failed[\s\S]*NotStarted[\s\S]*Succeeded/);
    const shot = join(tempDir(), 'dashboard.png');
    await page.screenshot({ path: shot, fullPage: true });
    t.diagnostic(`screenshot: ${shot}`);
    assert.deepEqual(errors, []);
  });
});

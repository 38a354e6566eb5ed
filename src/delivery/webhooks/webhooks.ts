/**
 * Webhooks as one process sees them, from its configuration: the guard that
 * checks `Spillway-Callback` URLs (the client-facing allow-list), the guard
 * for the operator's own subscriptions, which subscriptions apply to which
 * route, and the endpoints (with their secrets) this process delivers to.
 * The gateway asks it at capture; the dispatcher, at delivery.
 */
import type { WebhookEventName, WebhookTarget } from '../../store/port.ts';
import { type CallbackCheck, CallbackGuard, type CallbackPolicy } from './callback-guard.ts';
import { CALLBACK_ENDPOINT } from './message.ts';
import type { WebhookSchedule } from './schedule.ts';
import type { WebhookSecret } from './signing.ts';

/** A configured subscription: every operation of its routes posts its terminal events there. */
export interface WebhookSubscription {
  /** Part of the webhook-id: `[A-Za-z0-9_-]`, unique, not "callback". */
  name: string;
  url: string;
  /** Its own secrets, else the global ones. */
  secrets: readonly WebhookSecret[];
  /** Route names it applies to; null: every route. */
  routes: ReadonlySet<string> | null;
  /** Terminal events it receives; null: all of them. */
  events: readonly WebhookEventName[] | null;
}

/** The validated `webhooks` options (src/config/config.ts). */
export interface WebhookConfig {
  /** Sign callbacks, and subscriptions without their own; all of them sign (rotation). */
  secrets: readonly WebhookSecret[];
  /** Origins a `Spillway-Callback` may name, as `URL.origin` writes them. */
  callbackAllow: ReadonlySet<string>;
  allowPrivateNetworks: boolean;
  timeoutMs: number;
  schedule: WebhookSchedule;
  concurrency: number;
  pollIntervalMs: number;
  subscriptions: readonly WebhookSubscription[];
}

export type CallbackDecision =
  | { kind: 'none' }
  | { kind: 'allowed'; url: string }
  | { kind: 'refused'; detail: string };

export class Webhooks {
  readonly config: WebhookConfig;
  /** For `Spillway-Callback`: the allow-list clients are held to. */
  readonly callbackGuard: CallbackGuard;
  /** For subscriptions: their own origins only; the address checks are the same. */
  readonly subscriptionGuard: CallbackGuard;
  readonly #targetsByRoute = new Map<string, readonly WebhookTarget[]>();

  constructor(config: WebhookConfig, resolve?: CallbackPolicy['resolve']) {
    this.config = config;
    const shared = { allowPrivateNetworks: config.allowPrivateNetworks, ...(resolve ? { resolve } : {}) };
    this.callbackGuard = new CallbackGuard({ ...shared, allowOrigins: config.callbackAllow });
    this.subscriptionGuard = new CallbackGuard({
      ...shared,
      allowOrigins: new Set(config.subscriptions.map((s) => new URL(s.url).origin)),
    });
  }

  /** Anything to deliver at all: callbacks allowed, or a subscription. */
  get enabled(): boolean {
    return this.callbackGuard.enabled || this.config.subscriptions.length > 0;
  }

  /** A `Spillway-Callback` value: allowed, with every address its host resolves to checked. */
  checkCallback(url: string): Promise<CallbackCheck> {
    return this.callbackGuard.check(url);
  }

  /**
   * Reads a request's `Spillway-Callback` (every value the client sent): none,
   * one URL the guard allows, or a refusal whose detail tells the client what
   * to fix. The URL is kept as the guard normalised it (no fragment).
   */
  async callbackFrom(values: readonly string[] | undefined): Promise<CallbackDecision> {
    if (values === undefined || values.length === 0) return { kind: 'none' };
    // Two header lines, or two values folded into one line ("a, b") by the client or a proxy.
    if (values.length > 1 || /,\s*https?:\/\//i.test(values[0]!)) {
      return { kind: 'refused', detail: 'Send one Spillway-Callback header, not several.' };
    }
    const check = await this.callbackGuard.check(values[0]!.trim());
    if (check.ok) return { kind: 'allowed', url: check.url.href };
    return {
      kind: 'refused',
      detail: `The Spillway-Callback URL is refused: ${check.reason}. Nothing was stored or sent; send an allowed https URL, or none.`,
    };
  }

  /** The subscriptions that apply to an operation of `route`, as the store keeps them (worked out once per route). */
  subscriptionsFor(route: string): readonly WebhookTarget[] {
    let targets = this.#targetsByRoute.get(route);
    if (!targets) {
      targets = this.config.subscriptions
        .filter((s) => s.routes === null || s.routes.has(route))
        .map((s) => ({ endpoint: s.name, url: s.url, events: s.events }));
      this.#targetsByRoute.set(route, targets);
    }
    return targets;
  }

  /** The endpoints this process delivers to, by name, with who signs and what may be reached. */
  endpoints(): Map<string, { secrets: readonly WebhookSecret[]; guard: CallbackGuard }> {
    const endpoints = new Map<string, { secrets: readonly WebhookSecret[]; guard: CallbackGuard }>();
    if (this.callbackGuard.enabled && this.config.secrets.length > 0) {
      endpoints.set(CALLBACK_ENDPOINT, { secrets: this.config.secrets, guard: this.callbackGuard });
    }
    for (const s of this.config.subscriptions) {
      endpoints.set(s.name, { secrets: s.secrets, guard: this.subscriptionGuard });
    }
    return endpoints;
  }

  /** Closes the guards' connections. Safe to call twice. */
  async close(): Promise<void> {
    await Promise.all([this.callbackGuard.close(), this.subscriptionGuard.close()]);
  }
}

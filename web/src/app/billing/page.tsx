"use client";
import { useEffect, useState } from "react";
import {
  billingCheckoutApiV1BillingCheckoutPost,
  billingOverviewApiV1BillingGet,
  billingPortalApiV1BillingPortalPost,
} from "@/client/sdk.gen.ts";
import type { BillingOut } from "@/client/types.gen.ts";
import { ErrorNotice } from "@/components/ErrorNotice.tsx";
import { useRequiredSession } from "@/components/session.tsx";
import { ApiFailure, call } from "@/lib/api.ts";
import type { ApiProblem } from "@/lib/errors.ts";

const METRICS: Record<string, string> = { assessments: "Assessments this period" };

export default function BillingPage() {
  const session = useRequiredSession();
  const [billing, setBilling] = useState<BillingOut | null>(null);
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  const [busy, setBusy] = useState(false);

  useEffect(() => {
    if (!session) return;
    call(billingOverviewApiV1BillingGet())
      .then(setBilling)
      .catch((error: unknown) => {
        if (error instanceof ApiFailure) setProblem(error.problem);
      });
  }, [session]);

  async function go(request: () => Promise<{ url: string }>) {
    setProblem(null);
    setBusy(true);
    try {
      window.location.assign((await request()).url);
    } catch (error) {
      if (error instanceof ApiFailure) setProblem(error.problem);
      setBusy(false);
    }
  }

  if (!session) return null;
  return (
    <>
      <h1>Billing</h1>
      <ErrorNotice problem={problem} />
      {billing ? (
        <>
          <p data-testid="plan">Plan: <strong>{billing.plan}</strong>
            {billing.subscription.status ? ` (subscription ${billing.subscription.status})` : ""}</p>
          {billing.subscription.cancel_at_period_end ? <p className="notice warn">The subscription ends at the end of the period.</p> : null}
          {billing.subscription.payment_failed_at ? <p className="notice error">The last payment failed; update the payment method in the portal.</p> : null}
          <h2>Usage</h2>
          <table>
            <thead><tr><th scope="col">What</th><th scope="col">Used</th><th scope="col">Quota</th><th scope="col">Resets</th></tr></thead>
            <tbody>
              {billing.usage.map((u) => (
                <tr key={u.metric}>
                  <td>{METRICS[u.metric] ?? u.metric}</td>
                  <td>{u.used}{u.exceeded ? " (quota reached)" : u.warning ? " (close to the quota)" : ""}</td>
                  <td>{u.limit ?? "unlimited"}</td>
                  <td>{new Date(u.reset_at).toLocaleDateString("en")}</td>
                </tr>
              ))}
            </tbody>
          </table>
          {billing.plan === "free" ? (
            <button type="button" disabled={busy} onClick={() => go(() => call(billingCheckoutApiV1BillingCheckoutPost({ body: { plan: "pro" } })))}>
              Upgrade to Pro
            </button>
          ) : null}
          {billing.subscription.customer ? (
            <button type="button" className="secondary" disabled={busy}
              onClick={() => go(() => call(billingPortalApiV1BillingPortalPost()))}>
              Manage subscription
            </button>
          ) : null}
        </>
      ) : problem ? null : (
        <p role="status">Loading…</p>
      )}
    </>
  );
}

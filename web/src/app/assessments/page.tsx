"use client";
import Link from "next/link";
import { useEffect, useState } from "react";
import { listAssessmentsApiV1AssessmentsGet } from "@/client/sdk.gen.ts";
import type { AssessmentOut } from "@/client/types.gen.ts";
import { ErrorNotice } from "@/components/ErrorNotice.tsx";
import { useRequiredSession } from "@/components/session.tsx";
import { ApiFailure, call } from "@/lib/api.ts";
import type { ApiProblem } from "@/lib/errors.ts";
import { isFinal } from "@/lib/status.ts";

const POLL_MS = 2000;

export default function AssessmentsPage() {
  const session = useRequiredSession();
  const [items, setItems] = useState<AssessmentOut[] | null>(null);
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  useEffect(() => {
    if (!session) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    async function load() {
      try {
        const page = await call(listAssessmentsApiV1AssessmentsGet());
        if (stopped) return;
        setItems(page.items);
        // Live: while any is still being worked on, look again.
        if (page.items.some((a) => !isFinal(a.status))) timer = setTimeout(load, POLL_MS);
      } catch (error) {
        if (error instanceof ApiFailure && !stopped) setProblem(error.problem);
      }
    }
    void load();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [session]);
  if (!session) return null;
  return (
    <>
      <h1>Assessments</h1>
      <p><Link href="/questionnaire">Start a new assessment</Link></p>
      <ErrorNotice problem={problem} />
      {items === null && !problem ? <p role="status">Loading…</p> : null}
      {items !== null && items.length === 0 ? <p data-testid="no-assessments">No assessments yet.</p> : null}
      {items !== null && items.length > 0 ? (
        <table>
          <caption className="hint">Newest first</caption>
          <thead>
            <tr><th scope="col">Submitted</th><th scope="col">Status</th><th scope="col">Score</th></tr>
          </thead>
          <tbody>
            {items.map((a) => (
              <tr key={a.id}>
                <td><Link href={`/assessments/${a.id}`}>{new Date(a.created_at).toLocaleString("en")}</Link></td>
                <td data-status={a.status}>{a.status}{a.degraded ? " (degraded)" : ""}</td>
                <td>{a.overall_score ?? "–"}</td>
              </tr>
            ))}
          </tbody>
        </table>
      ) : null}
    </>
  );
}

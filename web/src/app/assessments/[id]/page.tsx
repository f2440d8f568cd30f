"use client";
import { useParams } from "next/navigation";
import { useEffect, useState } from "react";
import {
  getAssessmentApiV1AssessmentsAssessmentIdGet,
  getRoadmapApiV1RoadmapsRoadmapIdGet,
  questionnaireApiV1AssessmentsQuestionnaireGet,
} from "@/client/sdk.gen.ts";
import type { AssessmentOut, RoadmapOut } from "@/client/types.gen.ts";
import { ErrorNotice } from "@/components/ErrorNotice.tsx";
import { useRequiredSession } from "@/components/session.tsx";
import { ApiFailure, call } from "@/lib/api.ts";
import type { ApiProblem } from "@/lib/errors.ts";
import { degradedText, HORIZONS, isFinal, STATUS_TEXT } from "@/lib/status.ts";

const POLL_MS = 1000;

function ScoreBars({ scores, titles }: { scores: NonNullable<AssessmentOut["dimension_scores"]>; titles: Record<string, string> }) {
  return (
    <ul className="bars" aria-label="Score per dimension, out of 100">
      {Object.entries(scores).map(([dimension, s]) => (
        <li key={dimension} data-dimension={dimension}>
          <span>{titles[dimension] ?? dimension}</span>
          <svg className="bar" viewBox="0 0 100 10" preserveAspectRatio="none" aria-hidden="true" focusable="false">
            <rect x="0" y="0" width="100" height="10" fill="#e6e6e6" />
            <rect x="0" y="0" width={s.score} height="10" fill="#0b57d0" />
          </svg>
          <span>{s.score}/100</span>
        </li>
      ))}
    </ul>
  );
}

export default function AssessmentPage() {
  const session = useRequiredSession();
  const { id } = useParams<{ id: string }>();
  const [assessment, setAssessment] = useState<AssessmentOut | null>(null);
  const [roadmap, setRoadmap] = useState<RoadmapOut | null>(null);
  const [titles, setTitles] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<ApiProblem | null>(null);

  useEffect(() => {
    if (!session) return;
    let stopped = false;
    let timer: ReturnType<typeof setTimeout> | undefined;
    call(questionnaireApiV1AssessmentsQuestionnaireGet())
      .then((q) => setTitles(Object.fromEntries(q.dimensions.map((d) => [d.id, d.title]))))
      .catch(() => {});
    async function poll() {
      try {
        const current = await call(getAssessmentApiV1AssessmentsAssessmentIdGet({ path: { assessment_id: id } }));
        if (stopped) return;
        setAssessment(current);
        if (current.roadmap_id && current.status === "completed") {
          setRoadmap(await call(getRoadmapApiV1RoadmapsRoadmapIdGet({ path: { roadmap_id: current.roadmap_id } })));
        }
        if (!isFinal(current.status)) timer = setTimeout(poll, POLL_MS);
      } catch (error) {
        if (error instanceof ApiFailure && !stopped) setProblem(error.problem);
      }
    }
    void poll();
    return () => {
      stopped = true;
      if (timer) clearTimeout(timer);
    };
  }, [session, id]);

  if (!session) return null;
  if (problem) return (<><h1>Assessment</h1><ErrorNotice problem={problem} /></>);
  if (!assessment) return <p role="status">Loading…</p>;
  const degraded = degradedText(assessment.degraded);
  return (
    <>
      <h1>Assessment</h1>
      <p role="status" aria-live="polite" data-testid="status" data-status={assessment.status}>
        <strong>Status:</strong> {STATUS_TEXT[assessment.status]}
      </p>
      {degraded ? <p className="notice warn" data-testid="degraded">{degraded}</p> : null}
      {assessment.error ? <p className="notice error">{assessment.error}</p> : null}
      {assessment.overall_score !== null ? (
        <p data-testid="overall">Overall score: <strong>{assessment.overall_score}</strong>/100</p>
      ) : null}
      {assessment.dimension_scores ? (
        <section aria-labelledby="scores-heading">
          <h2 id="scores-heading">Score per dimension</h2>
          <ScoreBars scores={assessment.dimension_scores} titles={titles} />
          <dl>
            {Object.entries(assessment.dimension_scores).map(([d, s]) => (
              <div key={d}><dt>{titles[d] ?? d}</dt><dd>{s.rationale}</dd></div>
            ))}
          </dl>
        </section>
      ) : null}
      {roadmap ? (
        <section aria-labelledby="roadmap-heading" data-testid="roadmap">
          <h2 id="roadmap-heading">Roadmap</h2>
          {HORIZONS.map((horizon) => {
            const items = roadmap.items.filter((i) => i.horizon_days === horizon).sort((a, b) => a.priority - b.priority);
            if (items.length === 0) return null;
            return (
              <div key={horizon}>
                <h3>Next {horizon} days</h3>
                <ol className="roadmap">
                  {items.map((item) => (
                    <li key={`${item.priority}-${item.title}`}>
                      <span className="tag">Priority {item.priority}</span>
                      <span className="tag">{titles[item.dimension] ?? item.dimension}</span>
                      <strong>{item.title}</strong>
                      <p>{item.why}</p>
                    </li>
                  ))}
                </ol>
              </div>
            );
          })}
        </section>
      ) : null}
      {assessment.provider ? (
        <p className="hint">Scored by {assessment.provider}{assessment.model ? ` (${assessment.model})` : ""}.</p>
      ) : null}
    </>
  );
}

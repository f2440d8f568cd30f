"use client";
import { useRouter } from "next/navigation";
import { useEffect, useState, type FormEvent } from "react";
import {
  createAssessmentApiV1AssessmentsPost,
  questionnaireApiV1AssessmentsQuestionnaireGet,
} from "@/client/sdk.gen.ts";
import type { Questionnaire } from "@/client/types.gen.ts";
import { zAssessmentIn } from "@/client/zod.gen.ts";
import { ErrorNotice, FieldError } from "@/components/ErrorNotice.tsx";
import { useRequiredSession } from "@/components/session.tsx";
import { useSubmit } from "@/components/useForm.ts";
import { ApiFailure, call } from "@/lib/api.ts";
import type { ApiProblem } from "@/lib/errors.ts";

function fieldId(questionId: string): string {
  return `q-${questionId.replace(/[^a-zA-Z0-9_-]/g, "-")}`;
}

export default function QuestionnairePage() {
  const session = useRequiredSession();
  const router = useRouter();
  const [questionnaire, setQuestionnaire] = useState<Questionnaire | null>(null);
  const [loadProblem, setLoadProblem] = useState<ApiProblem | null>(null);
  const [answers, setAnswers] = useState<Record<string, number>>({});
  const [context, setContext] = useState("");
  const { fields, problem, busy, submit } = useSubmit(zAssessmentIn);

  useEffect(() => {
    if (!session) return;
    call(questionnaireApiV1AssessmentsQuestionnaireGet())
      .then(setQuestionnaire)
      .catch((error: unknown) => {
        if (error instanceof ApiFailure) setLoadProblem(error.problem);
      });
  }, [session]);

  async function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const value = { answers, context: context.trim() === "" ? null : context };
    await submit(value, async (body) => {
      const accepted = await call(
        createAssessmentApiV1AssessmentsPost({ body, headers: { "Idempotency-Key": crypto.randomUUID() } }),
      );
      router.push(`/assessments/${accepted.id}`);
    });
  }

  if (!session) return null;
  if (loadProblem) return <ErrorNotice problem={loadProblem} />;
  if (!questionnaire) return <p role="status">Loading the questionnaire…</p>;
  const min = questionnaire.scale_min ?? 0;
  const max = questionnaire.scale_max ?? 5;
  const scale = Array.from({ length: max - min + 1 }, (_, i) => min + i);
  const labels = questionnaire.scale_labels ?? {};
  const missing = Object.keys(fields).filter((k) => k.startsWith("answers")).length;

  return (
    <>
      <h1>New assessment</h1>
      <p>
        Rate each practice from {min} ({labels[String(min)] ?? min}) to {max} ({labels[String(max)] ?? max}).
      </p>
      <ErrorNotice problem={problem} />
      {missing > 0 && !problem ? (
        <p className="notice error" role="alert">
          {missing === 1 ? "One question needs an answer." : `${missing} questions need an answer.`}
        </p>
      ) : null}
      <form onSubmit={onSubmit} noValidate>
        {questionnaire.dimensions.map((dimension) => (
          <fieldset key={dimension.id}>
            <legend>{dimension.title}</legend>
            <p className="hint">{dimension.description}</p>
            {questionnaire.questions
              .filter((q) => q.dimension === dimension.id)
              .map((question) => {
                const id = fieldId(question.id);
                const error = fields[`answers.${question.id}`] ?? (fields.answers && answers[question.id] === undefined ? fields.answers : undefined);
                return (
                  <div className="question" key={question.id}>
                    <fieldset className="scale" aria-describedby={error ? `${id}-error` : undefined}
                      aria-invalid={Boolean(error)} data-question={question.id}>
                      <legend>
                        <strong>{question.label}</strong>: {question.text}
                      </legend>
                      {scale.map((n) => (
                        <label key={n}>
                          <input type="radio" name={question.id} value={n} checked={answers[question.id] === n}
                            onChange={() => setAnswers((a) => ({ ...a, [question.id]: n }))} />
                          {n} {labels[String(n)] ? `– ${labels[String(n)]}` : ""}
                        </label>
                      ))}
                    </fieldset>
                    <FieldError id={`${id}-error`} message={error} />
                  </div>
                );
              })}
          </fieldset>
        ))}
        <label htmlFor="context">Context (optional)</label>
        <p className="hint" id="context-hint">A line about your team and product, up to 2000 characters.</p>
        <textarea id="context" name="context" rows={3} maxLength={2000} value={context}
          onChange={(e) => setContext(e.target.value)} aria-describedby={fields.context ? "context-hint context-error" : "context-hint"} />
        <FieldError id="context-error" message={fields.context} />
        <button type="submit" disabled={busy}>Submit for scoring</button>
      </form>
    </>
  );
}

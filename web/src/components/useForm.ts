"use client";
import { useState } from "react";
import type { ZodType } from "zod";
import { ApiFailure } from "@/lib/api.ts";
import { zodProblems, type ApiProblem } from "@/lib/errors.ts";

/** Submit state for a form: client-side checks with a generated Zod schema first, then the
 * API's envelope, its field problems beside the fields and the rest in one notice. */
export function useSubmit<T>(schema: ZodType<T>) {
  const [fields, setFields] = useState<Record<string, string>>({});
  const [problem, setProblem] = useState<ApiProblem | null>(null);
  const [busy, setBusy] = useState(false);

  async function submit(value: unknown, send: (valid: T) => Promise<void>): Promise<boolean> {
    setProblem(null);
    const parsed = schema.safeParse(value);
    if (!parsed.success) {
      setFields(zodProblems(parsed.error.issues));
      return false;
    }
    setFields({});
    setBusy(true);
    try {
      await send(parsed.data);
      return true;
    } catch (error) {
      if (error instanceof ApiFailure) {
        setFields(error.problem.fields);
        const fieldsOnly = Object.keys(error.problem.fields).length > 0 && error.problem.status === 422;
        setProblem(fieldsOnly ? { ...error.problem, message: "Please correct the fields marked below." } : error.problem);
      } else {
        throw error;
      }
      return false;
    } finally {
      setBusy(false);
    }
  }
  return { fields, problem, busy, submit, setProblem };
}

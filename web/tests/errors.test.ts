import assert from "node:assert/strict";
import { test } from "node:test";
import { fieldProblems, isUnexpected, problemFrom, zodProblems } from "../src/lib/errors.ts";
import { zAssessmentIn, zSignupIn } from "../src/client/zod.gen.ts";
import { contentSecurityPolicy } from "../src/lib/csp.ts";

test("an envelope's validation details land on their fields", () => {
  const body = {
    error: {
      code: "validation_error",
      message: "The request is invalid.",
      details: [{ field: "password", problem: "too common" }, { field: "answers.obs.metrics", problem: "must be 0-5" }],
      trace_id: "abc",
    },
  };
  const problem = problemFrom(422, body, null);
  assert.equal(problem.code, "validation_error");
  assert.deepEqual(problem.fields, { password: "too common", "answers.obs.metrics": "must be 0-5" }); // pragma: allowlist secret
  assert.equal(isUnexpected(problem), false);
});

test("a 500 is unexpected and keeps its trace_id for support", () => {
  const problem = problemFrom(500, { error: { code: "internal", message: "Internal error", trace_id: "t-1" } }, "r-1");
  assert.equal(problem.traceId, "t-1");
  assert.equal(isUnexpected(problem), true);
});

test("a body that is no envelope is unexpected and falls back to X-Request-ID", () => {
  const problem = problemFrom(502, "<html>bad gateway</html>", "req-9");
  assert.equal(problem.traceId, "req-9");
  assert.equal(isUnexpected(problem), true);
  assert.deepEqual(fieldProblems("nope"), {});
});

test("the generated Zod schema rejects an answer outside 0-5 and names the question", () => {
  const parsed = zAssessmentIn.safeParse({ answers: { "obs.metrics": 7 } });
  assert.equal(parsed.success, false);
  const problems = zodProblems(parsed.error!.issues);
  assert.ok("answers.obs.metrics" in problems);
  assert.ok("answers.sec.tenant_isolation" in problems);
});

test("the generated Zod schema checks the signup email", () => {
  const parsed = zSignupIn.safeParse({ email: "not-an-address", password: "x", tenant_name: "Acme" });
  assert.equal(parsed.success, false);
  assert.ok("email" in zodProblems(parsed.error!.issues));
});

test("the CSP allows scripts only by nonce in production", () => {
  const csp = contentSecurityPolicy("bm9uY2U=", false);
  const script = csp.split("; ").find((d) => d.startsWith("script-src"))!;
  assert.match(script, /'nonce-bm9uY2U='/);
  assert.doesNotMatch(script, /unsafe-inline|unsafe-eval/);
  assert.match(csp, /frame-ancestors 'none'/);
});

test("only completed and failed assessments stop the live status", async () => {
  const { isFinal, STATUS_TEXT, degradedText } = await import("../src/lib/status.ts");
  assert.deepEqual(
    (Object.keys(STATUS_TEXT) as Array<keyof typeof STATUS_TEXT>).filter(isFinal),
    ["completed", "failed"],
  );
  assert.equal(degradedText(false), null);
  assert.match(degradedText(true)!, /offline scorer/);
});

"use client";
import { useState, type FormEvent } from "react";
import { signupApiV1AuthSignupPost } from "@/client/sdk.gen.ts";
import { zSignupIn } from "@/client/zod.gen.ts";
import { ErrorNotice, FieldError } from "@/components/ErrorNotice.tsx";
import { useSubmit } from "@/components/useForm.ts";
import { call } from "@/lib/api.ts";

export default function SignupPage() {
  const { fields, problem, busy, submit } = useSubmit(zSignupIn);
  const [done, setDone] = useState<string | null>(null);

  async function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const value = {
      email: String(form.get("email") ?? ""),
      password: String(form.get("password") ?? ""),
      tenant_name: String(form.get("tenant_name") ?? ""),
    };
    await submit(value, async (body) => {
      const result = await call(signupApiV1AuthSignupPost({ body }));
      setDone(result.message);
    });
  }

  if (done) {
    return (
      <>
        <h1>Check your mail</h1>
        <p className="notice ok" role="status">{done}</p>
        <p>Open the link in the mail to confirm your address, then log in.</p>
      </>
    );
  }
  return (
    <>
      <h1>Sign up</h1>
      <ErrorNotice problem={problem} />
      <form onSubmit={onSubmit} noValidate>
        <label htmlFor="email">Email</label>
        <input id="email" name="email" type="email" autoComplete="email" required
          aria-invalid={Boolean(fields.email)} aria-describedby={fields.email ? "email-error" : undefined} />
        <FieldError id="email-error" message={fields.email} />
        <label htmlFor="password">Password</label>
        <p className="hint" id="password-hint">At least 12 characters; not a common or repetitive password.</p>
        <input id="password" name="password" type="password" autoComplete="new-password" required
          aria-invalid={Boolean(fields.password)}
          aria-describedby={fields.password ? "password-hint password-error" : "password-hint"} />
        <FieldError id="password-error" message={fields.password} />
        <label htmlFor="tenant_name">Team name</label>
        <input id="tenant_name" name="tenant_name" type="text" autoComplete="organization" required
          aria-invalid={Boolean(fields.tenant_name)} aria-describedby={fields.tenant_name ? "tenant_name-error" : undefined} />
        <FieldError id="tenant_name-error" message={fields.tenant_name} />
        <button type="submit" disabled={busy}>Sign up</button>
      </form>
    </>
  );
}

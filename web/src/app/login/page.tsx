"use client";
import { useRouter, useSearchParams } from "next/navigation";
import { Suspense, type FormEvent } from "react";
import { createSessionApiV1AuthSessionPost } from "@/client/sdk.gen.ts";
import { zLoginIn } from "@/client/zod.gen.ts";
import { ErrorNotice, FieldError } from "@/components/ErrorNotice.tsx";
import { useSession } from "@/components/session.tsx";
import { useSubmit } from "@/components/useForm.ts";
import { call } from "@/lib/api.ts";

function LoginForm() {
  const { fields, problem, busy, submit } = useSubmit(zLoginIn);
  const { refresh } = useSession();
  const router = useRouter();
  const params = useSearchParams();

  async function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    const value = { email: String(form.get("email") ?? ""), password: String(form.get("password") ?? "") };
    await submit(value, async (body) => {
      // The API sets the __Host-session and __Host-csrf cookies; nothing is stored here.
      await call(createSessionApiV1AuthSessionPost({ body }));
      await refresh();
      router.push("/assessments");
    });
  }

  return (
    <>
      <h1>Log in</h1>
      {params.get("expired") ? (
        <p className="notice warn" role="status" data-testid="session-ended">
          Your session has ended or you are not logged in. Please log in.
        </p>
      ) : null}
      {params.get("logged_out") ? <p className="notice ok" role="status">You are logged out.</p> : null}
      {params.get("verified") ? <p className="notice ok" role="status">Address confirmed. You can log in now.</p> : null}
      <ErrorNotice problem={problem} />
      <form onSubmit={onSubmit} noValidate>
        <label htmlFor="email">Email</label>
        <input id="email" name="email" type="email" autoComplete="email" required
          aria-invalid={Boolean(fields.email)} aria-describedby={fields.email ? "email-error" : undefined} />
        <FieldError id="email-error" message={fields.email} />
        <label htmlFor="password">Password</label>
        <input id="password" name="password" type="password" autoComplete="current-password" required
          aria-invalid={Boolean(fields.password)} aria-describedby={fields.password ? "password-error" : undefined} />
        <FieldError id="password-error" message={fields.password} />
        <button type="submit" disabled={busy}>Log in</button>
      </form>
    </>
  );
}

export default function LoginPage() {
  return (
    <Suspense>
      <LoginForm />
    </Suspense>
  );
}

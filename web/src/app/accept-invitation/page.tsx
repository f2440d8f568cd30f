"use client";
import Link from "next/link";
import { useEffect, useState, type FormEvent } from "react";
import { acceptInvitationApiV1InvitationsAcceptPost } from "@/client/sdk.gen.ts";
import { zInvitationAcceptIn } from "@/client/zod.gen.ts";
import { ErrorNotice, FieldError } from "@/components/ErrorNotice.tsx";
import { useSubmit } from "@/components/useForm.ts";
import { call } from "@/lib/api.ts";

/** The link in an invitation mail: /accept-invitation#token=...; the invitee picks a password. */
export default function AcceptInvitationPage() {
  const { fields, problem, busy, submit } = useSubmit(zInvitationAcceptIn);
  const [token, setToken] = useState("");
  const [done, setDone] = useState<string | null>(null);
  useEffect(() => {
    setToken(new URLSearchParams(window.location.hash.slice(1)).get("token") ?? "");
    history.replaceState(null, "", window.location.pathname);
  }, []);
  async function onSubmit(event: FormEvent<HTMLFormElement>) {
    event.preventDefault();
    const form = new FormData(event.currentTarget);
    await submit({ token, password: String(form.get("password") ?? "") }, async (body) => {
      const result = await call(acceptInvitationApiV1InvitationsAcceptPost({ body }));
      setDone(result.message);
    });
  }
  if (done) {
    return (
      <>
        <h1>Invitation accepted</h1>
        <p className="notice ok" role="status">{done}</p>
        <p><Link href="/login">Log in</Link>.</p>
      </>
    );
  }
  return (
    <>
      <h1>Accept the invitation</h1>
      <ErrorNotice problem={problem} />
      <FieldError id="token-error" message={fields.token} />
      <form onSubmit={onSubmit} noValidate>
        <label htmlFor="password">Choose a password</label>
        <input id="password" name="password" type="password" autoComplete="new-password" required
          aria-invalid={Boolean(fields.password)} aria-describedby={fields.password ? "password-error" : undefined} />
        <FieldError id="password-error" message={fields.password} />
        <button type="submit" disabled={busy || !token}>Accept</button>
      </form>
    </>
  );
}

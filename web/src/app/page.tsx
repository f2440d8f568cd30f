"use client";
import Link from "next/link";
import { useSession } from "@/components/session.tsx";

export default function Home() {
  const { session } = useSession();
  return (
    <>
      <h1>Production readiness, assessed</h1>
      <p>
        Answer the questionnaire about your team&apos;s practices; Rampart scores each dimension and
        writes a prioritized roadmap for the next 30, 60 and 90 days.
      </p>
      {session ? (
        <p>
          <Link href="/questionnaire">Start a new assessment</Link> or see{" "}
          <Link href="/assessments">your assessments</Link>.
        </p>
      ) : (
        <p>
          <Link href="/signup">Sign up</Link> or <Link href="/login">log in</Link>.
        </p>
      )}
    </>
  );
}

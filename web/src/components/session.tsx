"use client";
// Who is logged in, from GET /api/v1/auth/session (the cookie is HttpOnly: script cannot
// read it, it can only ask). Pages that need a session send the visitor to /login.
import { useRouter } from "next/navigation";
import { createContext, useCallback, useContext, useEffect, useState, type ReactNode } from "react";
import { getSessionApiV1AuthSessionGet } from "@/client/sdk.gen.ts";
import type { SessionOut } from "@/client/types.gen.ts";
import "@/lib/api.ts";

interface SessionState {
  session: SessionOut | null;
  loading: boolean;
  refresh: () => Promise<void>;
}

const SessionContext = createContext<SessionState>({
  session: null,
  loading: true,
  refresh: async () => {},
});

export function SessionProvider({ children }: { children: ReactNode }) {
  const [session, setSession] = useState<SessionOut | null>(null);
  const [loading, setLoading] = useState(true);
  const refresh = useCallback(async () => {
    try {
      const result = await getSessionApiV1AuthSessionGet();
      setSession(result.response?.ok && result.data ? result.data : null);
    } catch {
      setSession(null);
    } finally {
      setLoading(false);
    }
  }, []);
  useEffect(() => {
    void refresh();
  }, [refresh]);
  return (
    <SessionContext.Provider value={{ session, loading, refresh }}>{children}</SessionContext.Provider>
  );
}

export function useSession(): SessionState {
  return useContext(SessionContext);
}

/** The session, sending the visitor to /login when there is none. */
export function useRequiredSession(): SessionOut | null {
  const { session, loading } = useSession();
  const router = useRouter();
  useEffect(() => {
    if (!loading && !session) router.replace("/login?expired=1");
  }, [loading, session, router]);
  return session;
}

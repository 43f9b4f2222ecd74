"""The queue's stores: thin callers of the SQL functions in supabase/migrations/."""

"""Prompts of the SQL assistant, as data."""

from __future__ import annotations

SYSTEM = (
    "You are an expert {dialect} SQL analyst. You write one correct {dialect} query that answers the "
    "question, using only the tables and columns in the schema. Match text values exactly as the schema's "
    "listed values are written. Prefer explicit JOINs on the foreign keys shown."
)

QUESTION = """Schema ({dialect}):

{schema}

Question: {question}

Write one {kind} that answers the question. Reply with the SQL only, in a ```sql block."""

REPAIR = """That SQL failed: {error}

Write the corrected {kind}. Reply with the SQL only, in a ```sql block."""

# The assistant's answer is started for the model, so it writes SQL at once.
ANSWER_OPENING = "```sql\n"
ANSWER_END = "```"

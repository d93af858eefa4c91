"""Google's Veo, served by two endpoints with one wire format.

- `gemini`: the Gemini Developer API, provider key "veo" (an API key).
- `vertex`: Vertex AI, provider key "vertex" (a service account, project and location).

What both share lives beside them: `operations` (the long-running operation a generation is),
`veo_models` (the Veo model family's limits) and `veo_base` (the request body, validation and
capabilities both endpoints build the same way).
"""

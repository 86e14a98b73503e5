"""The Knative Serving target: a revision runs as a `serving.knative.dev/v1` Service's Revision.

- `service`: the translation, one pure function (function.yaml, revision, artifact URI, route,
  settings) -> the Service and notes about keys Knative takes only cluster-wide.
- `render`: the Service as deterministic YAML (`zeroserve export knative FN`).
- `cluster`: applying, waiting for, re-routing and deleting it with the official kubernetes client
  (imported only by whoever talks to a cluster: the client costs ~0.5 s to import).

The pods run the generic runtime image (Dockerfile at the repository root), which fetches the
revision's artifact by digest: `zeroserve serve --artifact URI`. See docs/knative.md.
"""

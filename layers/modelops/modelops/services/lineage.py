"""Lineage queries over the adjacency-list graph, and OpenLineage export.

Ancestors are read level by level with batch reads, so a query costs round trips in
proportion to the graph's depth (one per 100 nodes of a level), not to its node count.
"""

from __future__ import annotations

import uuid

from modelops.contracts.registry import Consumers, LineageEdge, LineageGraph, OpenLineageExport
from modelops.domain.entities import LineageNode
from modelops.errors import NotFound
from modelops.ports import RegistryRepository

BATCH = 100
MAX_CONSUMERS = 100  # one batch read
MAX_NODES = 5000
PRODUCER = "https://github.com/illuvrse/modelops"
SCHEMA_URL = "https://openlineage.io/spec/2-0-2/OpenLineage.json#/definitions/RunEvent"
FACET_SCHEMA = "https://illuvrse.dev/schemas/openlineage/facets/1-0-0.json"
NAMESPACE = "illuvrse-modelops"


class LineageService:
    def __init__(self, repo: RegistryRepository) -> None:
        self._repo = repo

    def ancestors(self, node_id: str) -> LineageGraph:
        nodes: dict[str, LineageNode] = {}
        frontier = [node_id]
        depth = round_trips = 0
        while frontier and len(nodes) < MAX_NODES:
            found: dict[str, LineageNode] = {}
            for start in range(0, len(frontier), BATCH):
                found.update(self._repo.get_nodes(frontier[start : start + BATCH]))
                round_trips += 1
            if node_id not in nodes and node_id not in found:
                raise NotFound(f"{node_id} has no lineage record")
            nodes.update(found)
            next_level = {p for n in found.values() for p in n.parents if p not in nodes}
            frontier = sorted(next_level)
            depth += 1 if frontier else 0
        edges = [
            LineageEdge(child=n.nodeId, parent=p)
            for n in nodes.values()
            for p in n.parents
            if p in nodes
        ]
        return LineageGraph(
            root=node_id,
            nodes=sorted(nodes.values(), key=lambda n: n.nodeId),
            edges=sorted(edges, key=lambda e: (e.child, e.parent)),
            depth=depth,
            roundTrips=round_trips,
        )

    def consumers(self, node_id: str) -> Consumers:
        """What was derived directly from ``node_id``: datasets, models, fine-tunes."""
        children = self._repo.children_of(node_id, MAX_CONSUMERS)
        found = self._repo.get_nodes(children) if children else {}
        return Consumers(root=node_id, consumers=sorted(found.values(), key=lambda n: n.nodeId))

    def openlineage(self, node_id: str) -> OpenLineageExport:
        """One COMPLETE RunEvent per derived node (datasets with parents, models)."""
        graph = self.ancestors(node_id)
        by_id = {n.nodeId: n for n in graph.nodes}
        events = [
            {
                "eventType": "COMPLETE",
                "eventTime": (node.createdAt.isoformat() if node.createdAt else None),
                "producer": PRODUCER,
                "schemaURL": SCHEMA_URL,
                "run": {"runId": str(uuid.uuid5(uuid.NAMESPACE_URL, node.nodeId)), "facets": {}},
                "job": {
                    "namespace": NAMESPACE,
                    "name": f"{'train' if node.kind == 'model' else 'derive'}:{node.label}",
                    "facets": {},
                },
                "inputs": [_dataset(by_id[p]) for p in node.parents if p in by_id],
                "outputs": [_dataset(node)],
            }
            for node in graph.nodes
            if node.parents
        ]
        return OpenLineageExport(events=events)


def _facet(**fields: object) -> dict[str, object]:
    return {"_producer": PRODUCER, "_schemaURL": FACET_SCHEMA, **fields}


def _dataset(node: LineageNode) -> dict[str, object]:
    facets: dict[str, object] = {}
    if node.digest:
        facets["illuvrse_contentDigest"] = _facet(algorithm="sha256", rootDigest=node.digest)
    if node.license:
        facets["illuvrse_license"] = _facet(spdxExpression=node.license)
    if node.kind != "source":
        facets["illuvrse_pii"] = _facet(
            containsPii=bool(node.piiFlags), flags=[f.value for f in node.piiFlags]
        )
    if node.kind == "source":
        return {"namespace": node.label.split("://", 1)[0], "name": node.label, "facets": facets}
    return {"namespace": NAMESPACE, "name": f"{node.kind}:{node.nodeId}", "facets": facets}

"""Diagrams generated from the models, never drawn by hand.

* `graph`: the intermediate model (states, labelled transitions, participants, messages);
* `project`: derive it from a model: project the explored state graph onto some cells, or
  take the shortest run through milestones and draw it as a sequence;
* `mermaid`, `dot`: renderers (Mermaid text; DOT through pydot, SVG/PNG through Graphviz);
* `seed`: compare a generated diagram with the seed article's hand-drawn one via a mapping table;
* `catalog`, `document`: the diagrams ``iospec diagrams`` writes, and how.
"""

"""Syntax nodes of a whole file -> validated ``NeuralFile``: sections of each network,
layers expanded, plugin blocks (top-level ones applying to every network) validated."""

from __future__ import annotations

from neural_dsl_tracking.language.blocks import BlockData, read_block, validate_block
from neural_dsl_tracking.language.diagnostics import DiagnosticSink, Pos, did_you_mean
from neural_dsl_tracking.language.layer_expansion import LayerExpander
from neural_dsl_tracking.language.sections import SectionReader, source_pos
from neural_dsl_tracking.language.spec import ModelSpec, NeuralFile
from neural_dsl_tracking.language.syntax import Block, Entry, FileNode, NetworkNode, Section
from neural_dsl_tracking.plugins.base import Plugin

SECTIONS = ("input", "layers", "loss", "optimizer", "metrics", "train", "execution")
NETWORK_TRAIN_KEYS = ("epochs", "batch_size", "validation_split")
"""Training settings that may also be written beside the sections (``epochs: 10``)."""


class FileBuilder:
    """Builds the spec of one parsed file; problems go to ``sink``."""

    def __init__(self, sink: DiagnosticSink, plugins: dict[str, Plugin], sections: SectionReader):
        self.sink = sink
        self.plugins = plugins
        self.sections = sections

    def build(self, file: FileNode) -> NeuralFile:
        expander = LayerExpander(self.sink, file.macros, self.sections, self.plugins)
        top_blocks = self._plugin_blocks(file.plugin_blocks, "at top level")
        top_data = {kw: read_block(block, self.sink) for kw, block in top_blocks.items()}
        if not file.networks:
            self.sink.error(Pos(1, 1), "the file defines no network (expected 'network Name { ... }')")
        networks = [self._network(node, expander, top_data) for node in file.networks]
        expander.check_all_macros()
        self.sink.raise_if_any()
        return NeuralFile(path=self.sink.source.filename, networks=networks,
                          warnings=self.sink.rendered_warnings())

    def _plugin_blocks(self, blocks: list[Block], where: str) -> dict[str, Block]:
        found: dict[str, Block] = {}
        for block in blocks:
            if block.keyword in found:
                first = found[block.keyword].pos
                self.sink.error(
                    block.pos,
                    f"a second '{block.keyword}' block {where} (first at line {first.line}); "
                    f"put all settings in one block",
                )
            else:
                found[block.keyword] = block
        return found

    def _network(
        self, node: NetworkNode, expander: LayerExpander, top_data: dict[str, BlockData]
    ) -> ModelSpec | None:
        errors_before = self.sink.count
        sections: dict[str, Section] = {}
        blocks: list[Block] = []
        train_settings: list[Section] = []
        misspelt: set[str] = set()  # sections an unknown 'name:' was taken for
        for item in node.sections:
            if isinstance(item, Block):
                blocks.append(item)
            elif item.name == "train_setting":
                if item.payload.key[0] in NETWORK_TRAIN_KEYS:
                    train_settings.append(item)
                else:
                    misspelt.add(self._unknown_section(item.payload))
            elif item.name in sections:
                first = sections[item.name].pos
                self.sink.error(
                    item.pos, f"'{item.name}' is given twice in network '{node.name}' "
                              f"(first at line {first.line})"
                )
            else:
                sections[item.name] = item
        own_blocks = self._plugin_blocks(blocks, f"in network '{node.name}'")

        for required, example in (("input", "input: (28, 28, 1)"), ("layers", "layers: Dense(10)")):
            if required not in sections and required not in misspelt:
                self.sink.error(node.pos, f"network '{node.name}' has no {required} (e.g. `{example}`)")
        if "input" not in sections or "layers" not in sections:
            return None

        reader = self.sections
        fields: dict = {
            "name": node.name,
            "input": reader.input(sections["input"].payload, sections["input"].pos),
            "layers": expander.expand_network(sections["layers"].payload, node.name),
            "pos": source_pos(node.pos),
        }
        if "loss" in sections:
            fields["loss"] = reader.word(sections["loss"].payload, "the loss")
            fields["loss_pos"] = source_pos(sections["loss"].payload.pos)
        if "optimizer" in sections:
            fields["optimizer"] = reader.optimizer(sections["optimizer"].payload)
        if "metrics" in sections:
            fields["metrics"] = reader.metrics(sections["metrics"].payload)
        if "train" in sections or train_settings:
            fields["train"] = reader.train(_train_block(sections.get("train"), train_settings))
        if "execution" in sections:
            fields["execution"] = reader.execution(sections["execution"].payload)
        fields["plugins"], fields["plugin_pos"] = self._plugins(own_blocks, top_data)
        if self.sink.count > errors_before:
            return None
        return self._completed(ModelSpec(**fields))

    def _completed(self, network: ModelSpec) -> ModelSpec:
        """``network`` with each plugin's ``complete`` applied to its block; each sees the
        network with the other blocks as validated (not yet completed)."""
        completed = {
            keyword: self.plugins[keyword].complete(spec, network)  # type: ignore[misc]
            if self.plugins[keyword].complete is not None else spec
            for keyword, spec in network.plugins.items()
        }
        return network.model_copy(update={"plugins": completed})

    def _unknown_section(self, entry: Entry) -> str:
        """Report ``name:`` beside the sections that is neither a section nor a training
        setting; the section it is closest to (so that it is not also reported missing)."""
        name = entry.key[0]
        known = [*SECTIONS, *NETWORK_TRAIN_KEYS]
        hint = did_you_mean(name, known)
        self.sink.error(entry.key_pos, f"unknown section '{name}'{hint} (known: {', '.join(SECTIONS)}; "
                                       f"and {', '.join(NETWORK_TRAIN_KEYS)} as training settings)")
        return hint.split("'")[1] if hint else ""

    def _plugins(self, own: dict[str, Block], top_data: dict[str, BlockData]) -> tuple[dict, dict]:
        """The validated blocks by keyword, and where each block and its settings are written."""
        specs, positions = {}, {}
        for keyword, plugin in self.plugins.items():
            if keyword not in own and keyword not in top_data:
                continue
            data = top_data.get(keyword)
            if keyword in own:
                data = read_block(own[keyword], self.sink).merged_over(data)
            spec = validate_block(plugin, data, self.sink)
            if spec is not None:
                specs[keyword] = spec
                positions[keyword] = {key: source_pos(pos) for key, pos in data.positions().items()}
        return specs, positions


def _train_block(section: Section | None, settings: list[Section]) -> Block:
    """The ``train { }`` block with the ``epochs: N`` settings written beside the sections
    (a setting given both ways is reported as given twice)."""
    entries = [setting.payload for setting in settings]
    if section is None:
        return Block("train", settings[0].pos, entries)
    block: Block = section.payload
    return Block(block.keyword, block.pos, [*block.entries, *entries])

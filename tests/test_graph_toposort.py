"""graph.toposort: the one topological sort the partitioner and the HailoOp writer share."""

from __future__ import annotations

from onnx import TensorProto, helper

from hailo_ort.graph.toposort import node_reads, topological_order


def _chain() -> list:
    return [
        helper.make_node("Relu", ["x"], ["a"], name="n0"),
        helper.make_node("Relu", ["a"], ["b"], name="n1"),
        helper.make_node("Add", ["a", "b"], ["c"], name="n2"),
        helper.make_node("Relu", ["x"], ["d"], name="n3"),  # independent branch
    ]


def _reads(nodes: list) -> list[list[str]]:
    return [list(n.input) for n in nodes]


def test_sorted_list_comes_back_unchanged():
    nodes = _chain()
    assert topological_order(nodes, _reads(nodes)) == ([0, 1, 2, 3], [])


def test_unsorted_list_is_sorted_keeping_the_given_order_among_ready_nodes():
    nodes = list(reversed(_chain()))  # n3, n2, n1, n0
    order, stuck = topological_order(nodes, _reads(nodes))
    assert stuck == []
    assert [nodes[i].name for i in order] == ["n3", "n0", "n1", "n2"]


def test_cycle_reports_the_nodes_on_it():
    nodes = [
        helper.make_node("Relu", ["x"], ["a"], name="free"),
        helper.make_node("Add", ["a", "q"], ["p"], name="p"),
        helper.make_node("Relu", ["p"], ["q"], name="q"),
    ]
    order, stuck = topological_order(nodes, _reads(nodes))
    assert order == [0]
    assert [nodes[i].name for i in stuck] == ["p", "q"]


def test_given_reads_count_not_node_inputs():
    """A subgraph's outer-scope read is a dependency the caller passes in ``inputs``."""
    nodes = [
        helper.make_node("If", ["cond"], ["y"], name="if"),  # its branch reads "a"
        helper.make_node("Relu", ["x"], ["a"], name="make_a"),
    ]
    order, _ = topological_order(nodes, [["cond", "a"], ["x"]])
    assert [nodes[i].name for i in order] == ["make_a", "if"]


def test_node_reads_adds_outer_scope_names_of_subgraphs_once():
    vi = helper.make_tensor_value_info
    inner = helper.make_graph(
        [
            helper.make_node("Add", ["a", "b"], ["t"], name="inner_add"),  # a: outer, b: local
            helper.make_node("Mul", ["t", "a"], ["u"], name="inner_mul"),  # t: made inside
        ],
        "branch",
        [],
        [vi("u", TensorProto.FLOAT, [1])],
        initializer=[helper.make_tensor("b", TensorProto.FLOAT, [1], [1.0])],
    )
    deeper = helper.make_graph(
        [helper.make_node("If", ["c"], ["u"], name="nested", then_branch=inner, else_branch=inner)],
        "outer_branch",
        [],
        [vi("u", TensorProto.FLOAT, [1])],
    )
    node = helper.make_node("If", ["cond"], ["y"], name="if", then_branch=deeper, else_branch=inner)
    reads = node_reads(node)  # inputs first, then the subgraphs' reads in attribute order
    assert reads[0] == "cond" and sorted(reads[1:]) == ["a", "c"]
    plain = helper.make_node("Resize", ["x", "", "scales"], ["z"], name="resize")
    assert node_reads(plain) == ["x", "", "scales"]

"""Label maps: user labels as sets of ImageNet classes, WordNet ancestors, one-line errors, scores."""

from __future__ import annotations

import json

import pytest
from conftest import MAP, probabilities
from PIL import Image

from fol_core import hierarchy
from fol_core.imagenet import UnknownClassError, rank, resolve_class
from fol_core.labelmap import LabelMap, LabelMapError, load_label_map

CATS = {resolve_class(n) for n in ("tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat")}



def test_wordnet_ancestor_means_every_descendant():
    dogs = LabelMap.parse("dog: [dog]").labels["dog"]
    assert len(dogs) == 118  # WordNet 3.0: the ImageNet classes below dog.n.01
    for breed in ("golden retriever", "Chihuahua", "Siberian husky", "pug"):
        assert resolve_class(breed) in dogs
    for other in ("timber wolf", "tabby", "red fox"):
        assert resolve_class(other) not in dogs
    assert resolve_class("golden retriever") in hierarchy.descendants("n02084071")  # dog, domestic dog
    assert hierarchy.lemmas("n02084071")[0] == "dog"


def test_label_entries_by_index_wnid_name_and_ancestor():
    lm = LabelMap.parse(json.dumps({"labels": {
        "cat": ["domestic cat"], "birds": ["wordnet:bird"], "mixed": [282, "n02123045", "Persian cat", "hog"],
    }, "threshold": 0.2}))
    assert set(lm.labels["cat"]) == CATS
    assert lm.labels["mixed"] == (282, 281, 283, 341)  # in the order written, no repeats
    assert resolve_class("goldfinch") in lm.labels["birds"] and resolve_class("tabby") not in lm.labels["birds"]
    assert lm.threshold == 0.2
    assert "cat: tabby, tiger cat, Persian cat, Siamese cat, ... (5 classes)" in lm.describe()
    assert LabelMap.from_spec({"labels": lm.spec}).labels == lm.labels  # the stored spec rebuilds the map


def test_an_unknown_class_suggests_the_names_it_is_a_word_of():
    """"cat" used to suggest the first classes holding the letters: bullfrog (Rana catesbeiana), cockatoo..."""
    with pytest.raises(UnknownClassError) as info:
        resolve_class("cat")
    assert str(info.value) == ("no ImageNet class is called 'cat' "
                               "(did you mean: tabby, tiger cat, Persian cat, Siamese cat, Egyptian cat?)")
    assert {c.index for c in rank("cat")[:5]} == CATS
    assert [c.name for c in rank("porcupine")][:1] == ["porcupine"] and rank("xyzzy") == []


def test_a_typo_suggests_the_class_and_a_class_in_two_labels_is_boxed_once():
    import torch

    from fol_core.bootstrap.prelabel import LabelRequest

    with pytest.raises(LabelMapError, match=r"'cofee mug' \(did you mean: coffee mug\?\)"):
        LabelMap.parse("drinkware: [cofee mug]")
    lm = LabelMap.parse("footwear: [Christmas stocking, clog]\nclothing: [Christmas stocking, jersey]\nother: [clog]")
    assert lm.notes() == [("classes in two labels or more: Christmas stocking (footwear, clothing); clog (footwear, "
                          "other). A photo of one scores in each, and its box gets the better-scoring label only")]
    assert any(line.startswith("⚠️ classes in two labels") for line in lm.describe())
    probs = torch.zeros(1000)
    probs[resolve_class("Christmas stocking")], probs[resolve_class("jersey")] = 0.8, 0.1
    (target,) = LabelRequest(lm, topn=3).targets(probs)  # clothing 0.9, footwear 0.8: one box, not two alike
    assert (target.label, target.class_index) == ("clothing", resolve_class("Christmas stocking"))
    assert LabelMap.parse(MAP).notes() == []


def test_label_map_errors_are_one_line():
    for text, words in [("cat: [no such thing]", "no such thing"), ("- a\n- b", "mapping"), ("x: [a", "YAML"),
                        ("{}", "no labels"), ("cat: [tabby]\nthreshold: high", "threshold")]:
        with pytest.raises(LabelMapError, match=words) as info:
            LabelMap.parse(text)
        assert "\n" not in str(info.value)


def test_label_scores_sum_their_classes(model, examples_dir):
    probs = probabilities(model, Image.open(examples_dir / "chelsea.png"))
    lm = LabelMap.parse(MAP)
    scores = lm.scores(probs)
    assert scores["cat"] == pytest.approx(float(probs[sorted(CATS)].sum()), rel=1e-5)
    assert scores["cat"] > 0.5 > scores["dog"]
    assert lm.best_class("cat", probs) in CATS
    default = load_label_map(None)
    assert len(default.labels) == 998 and default.labels["crane"] == (134, 517)  # two classes share a name
    dogs = set(LabelMap.parse("d: [dog]").labels["d"])
    assert len(default.candidates("dog")) == 118 and all(set(default.labels[n]) <= dogs for n in default.candidates("dog"))

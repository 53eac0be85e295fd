"""The reference tables of the project's seed document (see DESIGN.md).

Channel units are `Layer(n)[k]` = channel k of VGG's `features.n`; class units
are logits of the output layer. They are rendered for whichever VGG is given.
"""

# (n, k): channel k of features.n
REFERENCE_CHANNELS: tuple[tuple[int, int], ...] = (
    (0, 63),
    (12, 3), (12, 105), (12, 181), (12, 231),
    (14, 181),
    (19, 54),
    (21, 54),
    (24, 54),
    (26, 1), (26, 54), (26, 200),
    (28, 54), (28, 264), (28, 265), (28, 266), (28, 462),
)

# class index -> the name the seed document gives it
REFERENCE_CLASSES: dict[int, str] = {
    1: "goldfish", 3: "tiger shark", 7: "cock", 30: "bullfrog", 37: "box turtle",
    48: "Komodo dragon", 49: "African crocodile", 71: "scorpion", 76: "tarantula",
    79: "centipede", 92: "bee eater", 99: "goose", 105: "koala", 107: "jellyfish",
    285: "Egyptian cat", 301: "ladybug", 309: "bee", 316: "cicada",
    403: "aircraft carrier", 417: "balloon", 445: "bikini", 485: "CD player",
    488: "chain", 492: "chest", 508: "computer keyboard", 531: "digital watch",
    562: "fountain", 605: "iPod", 629: "lipstick", 657: "missile",
    805: "soccer ball", 879: "umbrella", 971: "bubble", 987: "corn",
}


def reference_channel_label(n: int, k: int) -> str:
    return f"Layer({n})[{k}]"


def reference_channel_layer(n: int) -> str:
    return f"features.{n}"

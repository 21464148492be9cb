def main():
    import importlib.resources as r
    print(r.files("connector").joinpath("manifest.json").read_text(), [p.name for p in r.files("connector").joinpath("playbooks").iterdir()])
    return 0

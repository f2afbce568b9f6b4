//! Adversarial test component: asks the host for a capability it does not provide (a
//! `fetch` function), as a plugin trying to reach the network would. The host must reject
//! it when it links the component, before running anything.

wit_bindgen::generate!({
    inline: "
        package test:importer;
        world importer {
            import fetch: func(url: string) -> string;
            export run: func() -> string;
        }
    ",
});

struct Importer;

impl Guest for Importer {
    fn run() -> String {
        fetch("http://example.invalid/")
    }
}

export!(Importer);

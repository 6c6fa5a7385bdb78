use super::*;

#[test]
fn smoke() {
    let src = "graph g(%x: f32[N,3]) -> (%y) {\n  %y = Relu(%x) : f32[N,3]\n}\n";
    let g = parse(src).unwrap();
    assert_eq!(print(&g, &PrintOptions::default()), src);
}

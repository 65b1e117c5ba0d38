import FerryClient
import Testing

@Suite struct PageResourcesTests {
    @Test func htmlNamesItsImagesScriptsAndStylesheetsInOrder() {
        let page = """
            <!doctype html><html><head>
            <link rel="stylesheet" href="/css/a.css"><link rel=icon href='favicon.ico'>
            <link rel="alternate" href="/feed.xml">
            <!-- <img src="commented.png"> -->
            <script src="app.js?v=2&amp;x=1"></script><script>var inline = 1;</script>
            </head><body><IMG SRC=pic.png alt="a > b"><img alt="no source"><a href="/other.html">x</a>
            """
        #expect(PageResources.inHTML(page) == ["/css/a.css", "favicon.ico", "app.js?v=2&x=1", "pic.png"])
    }

    @Test func cssNamesWhatItsUrlsAndImportsName() {
        let css = """
            @import "base.css";
            @import url(print.css) print;
            .a { background: url( '../img/a.png' ) }
            .b { background: url(data:image/png;base64,AAAA) }
            .c { background-image: url("b.png"), url(c.png); }
            """
        #expect(PageResources.inCSS(css) == ["base.css", "print.css", "../img/a.png", "b.png", "c.png"])
    }
}

// The lazily loaded math chunk: KaTeX and its stylesheet.
import katex from 'katex';
import 'katex/dist/katex.min.css';
export default katex;

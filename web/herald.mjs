// ES module entry: `import Herald, { connect, list } from "/herald.mjs"`. herald.js itself stays
// a plain script so a <script> tag works too; importing it here defines globalThis.Herald.
import "./herald.js";

const Herald = globalThis.Herald;
export default Herald;
export const connect = Herald.connect;
export const list = Herald.list;
